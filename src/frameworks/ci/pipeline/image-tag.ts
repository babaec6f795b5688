/**
 * The `tags` of a build-image step: `REPOSITORY:TAG`, the repository a path under the registry's
 * address (`web`, `team/web`), in Docker's reference grammar (distribution/reference): path
 * components of lower-case letters and digits joined by `.`, `_`, `__` or dashes, separated by
 * `/`; a tag of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, at most 128
 * characters. Templates (`{{tag}}`, ...) may stand in either half; what they give is checked when
 * the step runs, since a git tag such as `release/1.0` is no Docker tag.
 */

import { templateProblem } from './step-template.ts';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/** Docker's limit on a whole name (address and repository). */
export const MAX_IMAGE_NAME_LENGTH = 255;
const TEMPLATE = /\{\{[^{}]*\}\}/g;
const HAS_TEMPLATE = /\{\{[^{}]*\}\}/;

/** Why a tag template is not `REPOSITORY:TAG`, or undefined. Literal halves are checked now, templated ones when expanded. */
export function imageTagTemplateProblem(text: string): string | undefined {
  const template = templateProblem(text);
  if (template !== undefined) return template;
  // The colon between repository and tag is never inside a template (none holds one).
  const colon = text.replace(TEMPLATE, (m) => '_'.repeat(m.length)).lastIndexOf(':');
  if (colon < 0) return `must be REPOSITORY:TAG, the repository under the registry's address (web:{{tag}}, team/web:sha-{{commit}}), not ${JSON.stringify(text)}`;
  const repository = text.slice(0, colon);
  const tag = text.slice(colon + 1);
  return (HAS_TEMPLATE.test(repository) ? undefined : repositoryProblem(repository)) ?? (HAS_TEMPLATE.test(tag) ? undefined : tagProblem(tag));
}

/** An expanded `REPOSITORY:TAG`, checked; or why it is not one. */
export function parseImageTag(text: string): { repository: string; tag: string } | { problem: string } {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return { problem: `${JSON.stringify(text)} is not REPOSITORY:TAG` };
  const repository = text.slice(0, colon);
  const tag = text.slice(colon + 1);
  const problem = repositoryProblem(repository) ?? tagProblem(tag);
  return problem !== undefined ? { problem } : { repository, tag };
}

function repositoryProblem(repository: string): string | undefined {
  if (repository === '') return 'has no repository before the `:` (REPOSITORY:TAG, e.g. web:{{tag}})';
  const bad = repository.split('/').find((c) => !PATH_COMPONENT.test(c));
  if (bad !== undefined) {
    return `repository ${JSON.stringify(repository)} is not a Docker repository name: \`/\`-separated parts of lower-case letters and digits, joined by \`.\`, \`_\` or \`-\` (not ${JSON.stringify(bad)}); the registry's address comes from the job`;
  }
  if (repository.length > MAX_IMAGE_NAME_LENGTH) return `repository is ${repository.length} characters long; Docker allows ${MAX_IMAGE_NAME_LENGTH}`;
  return undefined;
}

function tagProblem(tag: string): string | undefined {
  if (TAG.test(tag)) return undefined;
  return `tag ${JSON.stringify(tag)} is not a Docker tag: letters, digits, \`_\`, \`.\` and \`-\`, not starting with \`.\` or \`-\`, at most 128 characters`;
}
