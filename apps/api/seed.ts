// Demo data for GET /api/data, created once on first boot: `count` items spread over 20
// categories. Recorded in `seeds`, in the same transaction, so a second run inserts nothing.
import pg from 'pg';
import { inTransaction } from '../../lib/db.js';

export const SEED_CATEGORIES = 20;

export async function seedItems(url: string, count: number): Promise<number> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const seeded = await inTransaction(client, async () => {
      // Serialises concurrent appliances sharing one external database.
      await client.query('LOCK TABLE seeds IN EXCLUSIVE MODE');
      if ((await client.query("SELECT 1 FROM seeds WHERE name = 'items'")).rowCount) return 0;
      await client.query(
        `INSERT INTO items (category, name, price_cents)
         SELECT 'cat-' || lpad((i % $2)::text, 2, '0'), 'item ' || i, (i * 7919) % 100000
         FROM generate_series(1, $1::int) AS i`,
        [count, SEED_CATEGORIES],
      );
      await client.query("INSERT INTO seeds (name, rows) VALUES ('items', $1)", [count]);
      return count;
    });
    if (seeded > 0) await client.query('ANALYZE items');
    return seeded;
  } finally {
    await client.end();
  }
}
