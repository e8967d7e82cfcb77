// What other parts of the appliance use from the API app (the supervisor seeds its data).
export { seedItems, SEED_CATEGORIES } from './seed.js';
