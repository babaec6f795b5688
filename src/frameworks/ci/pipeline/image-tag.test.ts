import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { imageTagTemplateProblem, MAX_IMAGE_NAME_LENGTH, parseImageTag } from './image-tag.ts';

describe('image tags of build-image steps', () => {
  it('splits REPOSITORY:TAG at the last colon and keeps path components', () => {
    assert.deepEqual(parseImageTag('web:1.2.3'), { repository: 'web', tag: '1.2.3' });
    assert.deepEqual(parseImageTag('team/web-api:sha-abc_1'), { repository: 'team/web-api', tag: 'sha-abc_1' });
    assert.deepEqual(parseImageTag('a.b__c/d--e:X'), { repository: 'a.b__c/d--e', tag: 'X' });
  });

  it('refuses what Docker would refuse, saying which half is wrong', () => {
    const problem = (text: string) => {
      const r = parseImageTag(text);
      return 'problem' in r ? r.problem : undefined;
    };
    assert.match(problem('web') ?? '', /is not REPOSITORY:TAG/);
    assert.match(problem(':1') ?? '', /no repository/);
    assert.match(problem('Web:1') ?? '', /repository "Web" is not a Docker repository name/);
    assert.match(problem('web/:1') ?? '', /not ""/);
    assert.match(problem('web_:1') ?? '', /not "web_"/);
    assert.match(problem('web:.x') ?? '', /tag ".x" is not a Docker tag/);
    assert.match(problem('web:-x') ?? '', /tag "-x"/);
    assert.match(problem(`web:${'a'.repeat(129)}`) ?? '', /at most 128/);
    assert.equal(problem(`web:${'a'.repeat(128)}`), undefined);
    assert.match(problem(`${'a'.repeat(MAX_IMAGE_NAME_LENGTH + 1)}:1`) ?? '', /Docker allows 255/);
    // A git tag such as release/1.0 expands into a tag half Docker refuses.
    assert.match(problem('web:release/1.0') ?? '', /is not a Docker tag/);
  });

  it('checks the literal halves of templates now and leaves templated halves to run time', () => {
    assert.equal(imageTagTemplateProblem('web:{{tag}}'), undefined);
    assert.equal(imageTagTemplateProblem('{{commit}}/web:1'), undefined);
    assert.equal(imageTagTemplateProblem('team/web:sha-{{ commit }}'), undefined);
    assert.match(imageTagTemplateProblem('{{tag}}') ?? '', /must be REPOSITORY:TAG/);
    assert.match(imageTagTemplateProblem('Web:{{tag}}') ?? '', /repository "Web"/);
    // A templated half is checked once expanded (parseImageTag, when the step runs).
    assert.equal(imageTagTemplateProblem('web:-{{tag}}'), undefined);
    assert.match(imageTagTemplateProblem('web:{{nope}}') ?? '', /nope/);
  });
});
