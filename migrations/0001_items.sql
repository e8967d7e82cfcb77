-- The demo services' data: items read by GET /api/data, filtered by category (indexed, so a
-- database regression has an index to avoid).
CREATE TABLE items (
  id          bigserial PRIMARY KEY,
  category    text        NOT NULL,
  name        text        NOT NULL,
  price_cents integer     NOT NULL CHECK (price_cents >= 0),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX items_category_idx ON items (category);
