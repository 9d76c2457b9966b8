/** Types of scripts/check-imports.mjs for the unit test that runs it (test/unit/house-rules.test.ts). */
export function checkHouse(root: string, opts?: { types?: boolean }): { modules: number; problems: string[] };
