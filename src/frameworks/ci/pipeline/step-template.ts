/**
 * The `{{variable}}` templates of delivery steps (a publish step's `target`, an image's `tags`):
 * `{{tag}}` (the tag built), `{{commit}}` (the full commit SHA), `{{build}}` (the build's number),
 * spaces inside the braces allowed. Nothing else is substituted; a `{{` that does not open one of
 * these is refused when the pipeline is read, and a variable without a value (`{{tag}}` in a build
 * that no tag started) when the step runs: an artifact named `agent//agent.tar.gz` would be a
 * silent mistake.
 */

export const TEMPLATE_VARIABLES = ['tag', 'commit', 'build'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

const REFERENCE = /\{\{\s*([^{}]*?)\s*\}\}/g;

/** Why `text` is not a valid template, or undefined. */
export function templateProblem(text: string): string | undefined {
  for (const m of text.matchAll(REFERENCE)) {
    const name = m[1] as string;
    if (!(TEMPLATE_VARIABLES as readonly string[]).includes(name)) {
      return `{{${name}}} is not a variable: the variables are ${TEMPLATE_VARIABLES.map((v) => `{{${v}}}`).join(', ')}`;
    }
  }
  const rest = text.replace(REFERENCE, '');
  if (rest.includes('{{') || rest.includes('}}')) return 'has a `{{` or `}}` that is not a variable reference ({{tag}}, {{commit}}, {{build}})';
  return undefined;
}

/** `text` with its variables replaced; `{ missing }` names the first one without a value (empty). */
export function expandTemplate(text: string, values: Readonly<Record<TemplateVariable, string>>): { text: string } | { missing: TemplateVariable } {
  let missing: TemplateVariable | undefined;
  const out = text.replace(REFERENCE, (_all, name: string) => {
    const value = values[name as TemplateVariable] ?? '';
    if (value === '') missing ??= name as TemplateVariable;
    return value;
  });
  return missing !== undefined ? { missing } : { text: out };
}
