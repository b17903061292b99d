// The folders' import rules (README "Layout"): control/ and agent/ never
// import each other, contract/ imports neither, and cli/ only contract/. Read from the sources, so
// a new import that crosses a line fails here before review.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..').replace(/[/\\]dist$/, '');
const FORBIDDEN: Record<string, string[]> = {
  contract: ['control', 'agent', 'cli', 'test', 'bench'],
  control: ['agent', 'cli', 'test', 'bench'],
  agent: ['control', 'cli', 'test', 'bench'],
  // The operator CLI talks to the REST API only; contract/ gives it the model's names.
  cli: ['control', 'agent', 'test', 'bench'],
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

/** Top-level folders that a file's relative imports reach. */
function importedFolders(file: string): Array<{ spec: string; folder: string }> {
  const src = readFileSync(file, 'utf8');
  const found: Array<{ spec: string; folder: string }> = [];
  for (const m of src.matchAll(/(?:from\s+|import\s*\(\s*|require\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = relative(ROOT, resolve(dirname(file), m[1]));
    found.push({ spec: m[1], folder: target.split(/[/\\]/)[0] });
  }
  return found;
}

for (const [folder, forbidden] of Object.entries(FORBIDDEN)) {
  t.test(`${folder}/ imports none of ${forbidden.join(', ')}`, async (t) => {
    const files = tsFiles(join(ROOT, folder));
    t.ok(files.length > 0, `${folder}/ has sources`);
    const crossings = files.flatMap((file) =>
      importedFolders(file)
        .filter((i) => forbidden.includes(i.folder))
        .map((i) => `${relative(ROOT, file)} imports ${i.spec}`),
    );
    t.same(crossings, [], 'no import crosses the line');
  });
}

// The store is the service's: REST handlers go through service methods, so
// that the rules every store shares (and later, replica concerns) sit in one place.
t.test('control/rest/ reaches the store only through the service', async (t) => {
  const reaches = tsFiles(join(ROOT, 'control/rest')).flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .map((line, i) => ({ line, at: `${relative(ROOT, file)}:${i + 1}` }))
      .filter(({ line }) => /\.store\b/.test(line) || /from\s+['"]\.\.\/store\/(sqlite|postgres|records)['"]/.test(line))
      .map(({ at, line }) => `${at}: ${line.trim()}`),
  );
  t.same(reaches, [], 'no service.store and no store implementation in control/rest');
});
