import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConfigFile } from './config-definitions.ts';
import { parseProperties, renderFiles, sha256, syntaxProblem } from './render-files.ts';

const file = (name: string, template = `templates/${name}`): ConfigFile => ({ name, template, destination: `/etc/app/${name}`, mode: '0644' });

describe('renderFiles', () => {
  it('renders Liquid templates with the values, dotted keys as paths and the flat map as values', async () => {
    const r = await renderFiles(
      [
        { file: file('app.yaml'), text: 'db:\n  host: {{ db.host }}\n  port: {{ db_port }}\nurl: {{ values["spring.url"] }}\nhosts:\n{% for h in hosts %}  - {{ h | upcase }}\n{% endfor %}' },
        { file: file('plain.txt'), text: 'port={{ db_port | plus: 1 }}' },
      ],
      { 'db.host': 'pg.local', db_port: 5432, 'spring.url': 'jdbc:x', hosts: ['a', 'b'] },
    );
    assert.ok('files' in r, JSON.stringify(r));
    assert.equal(r.files[0]!.content, 'db:\n  host: pg.local\n  port: 5432\nurl: jdbc:x\nhosts:\n  - A\n  - B\n');
    assert.equal(r.files[0]!.sha256, sha256(r.files[0]!.content));
    assert.equal(r.files[1]!.content, 'port=5433');
    assert.equal(r.files[0]!.destination, '/etc/app/app.yaml');
  });

  it('refuses an undefined variable or filter, naming the file, its template, the line and the variable', async () => {
    const r = await renderFiles([{ file: file('app.conf'), text: 'a\nb\nhost={{ db_host }}\n' }, { file: file('b.conf'), text: '{{ x | nosuchfilter }}' }], { x: 1 });
    assert.ok('problems' in r);
    assert.equal(r.problems[0]!.field, 'files.app.conf (template templates/app.conf)');
    assert.match(r.problems[0]!.message, /undefined variable: db_host, line:3/);
    assert.match(r.problems[1]!.message, /undefined filter: nosuchfilter/);
  });

  it('lets an explicit default or an if stand for a missing value', async () => {
    const r = await renderFiles([{ file: file('a.txt'), text: '{{ x | default: 7 }}{% if y %}y{% endif %}' }], {});
    assert.ok('files' in r, JSON.stringify(r));
    assert.equal(r.files[0]!.content, '7');
  });

  it('refuses includes: a template reads nothing but its values', async () => {
    const r = await renderFiles([{ file: file('a.txt'), text: "{% include 'secret.txt' %}" }], {});
    assert.ok('problems' in r);
    assert.match(r.problems[0]!.message, /secret\.txt/);
  });

  it('checks the rendered syntax of json, yaml, toml and properties files', async () => {
    const r = await renderFiles(
      [
        { file: file('a.json'), text: '{"port": {{ port }},}' },
        { file: file('b.yaml'), text: 'a: 1\na: 2\n' },
        { file: file('c.toml'), text: 'port = {{ port }}\n[x\n' },
        { file: file('d.properties'), text: 'k=\\u12\n' },
        { file: file('ok.json'), text: '{"port": {{ port }}}' },
      ],
      { port: 80 },
    );
    assert.ok('problems' in r);
    assert.deepEqual(r.problems.map((p) => p.field.split(' ')[0]), ['files.a.json', 'files.b.yaml', 'files.c.toml', 'files.d.properties']);
    assert.match(r.problems[0]!.message, /renders to invalid JSON/);
    assert.match(r.problems[1]!.message, /YAML: .*(duplicate|unique)/i);
    assert.match(r.problems[2]!.message, /TOML/);
    assert.match(r.problems[3]!.message, /line 1: a \\u escape/);
    assert.equal(syntaxProblem('ok.json', '{"port": 80}'), undefined);
  });

  it('stops a template that would loop or allocate without bound, saying so', async () => {
    const started = Date.now();
    const r = await renderFiles([{ file: file('a.txt'), text: '{% for i in (1..30000000) %}{{ i }}{% endfor %}' }], {});
    assert.ok('problems' in r);
    assert.match(r.problems[0]!.message, /limit|exceeded/i);
    assert.ok(Date.now() - started < 3000, `stopped after ${Date.now() - started} ms`);
  });

  it('says when a dotted key cannot be a path because a plain key holds a value', async () => {
    const r = await renderFiles([{ file: file('a.txt'), text: '{{ db }}' }], { db: 'x', 'db.host': 'h' });
    assert.ok('problems' in r);
    assert.match(r.problems[0]!.message, /'db' is a value of its own/);
  });
});

describe('parseProperties', () => {
  it('reads keys and values as java.util.Properties does: separators, comments, continuations, escapes', () => {
    assert.deepEqual(parseProperties('# c\n! c\na=1\nb : 2\nc 3\nlong=a\\\n   b\nu=\\u0041\\tx\n\n'), { a: '1', b: '2', c: '3', long: 'ab', u: 'A\tx' });
  });
});
