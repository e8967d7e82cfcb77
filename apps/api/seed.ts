// Demo data for GET /api/data, created once on first boot: `count` items spread over 20
// categories. Recorded in `seeds`, in the same transaction, so a second run inserts nothing.
import pg from 'pg';

export const SEED_CATEGORIES = 20;

export async function seedItems(url: string, count: number): Promise<number> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await client.query('BEGIN');
    // Serialises concurrent appliances sharing one external database.
    await client.query("LOCK TABLE seeds IN EXCLUSIVE MODE");
    const { rowCount } = await client.query("SELECT 1 FROM seeds WHERE name = 'items'");
    if (rowCount) {
      await client.query('ROLLBACK');
      return 0;
    }
    await client.query(
      `INSERT INTO items (category, name, price_cents)
       SELECT 'cat-' || lpad((i % $2)::text, 2, '0'), 'item ' || i, (i * 7919) % 100000
       FROM generate_series(1, $1::int) AS i`,
      [count, SEED_CATEGORIES],
    );
    await client.query("INSERT INTO seeds (name, rows) VALUES ('items', $1)", [count]);
    await client.query('COMMIT');
    await client.query('ANALYZE items');
    return count;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}
