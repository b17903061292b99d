// npm run docs:cli: writes docs/CLI.md from the command definitions.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { referencePage } from './reference';

const root = join(__dirname, '..', '..');
writeFileSync(join(root, 'docs', 'CLI.md'), referencePage());
process.stdout.write('wrote docs/CLI.md\n');
