// A process that stages an output and stops at one step of publishing it, for tests that SIGKILL it there:
//   tsx test/helpers/publish-child.ts <target> <staged|old-output-moved-aside|new-output-moved-in>
// It prints "paused" when it has reached the step, then waits to be killed.
import { promises as fs } from 'node:fs';
import { StagedOutput } from '../../server/src/engine/pipeline/staging';

const [target, stopAt] = process.argv.slice(2) as [string, string];
const wait = async () => {
  process.stdout.write('paused\n');
  await new Promise(() => setInterval(() => undefined, 1000));
};

async function main(): Promise<void> {
  const staged = await StagedOutput.create(target);
  await fs.writeFile(staged.file('model.safetensors'), 'new model');
  await fs.writeFile(
    staged.file('report.json'),
    JSON.stringify({ version: 1, tool: { mergeStudio: 'test' }, output: { files: ['model.safetensors', 'report.json'] } }),
  );
  if (stopAt === 'staged') await wait();
  await staged.publish(async (step) => {
    if (step === stopAt) await wait();
  });
  process.stdout.write('published\n');
}

void main();
