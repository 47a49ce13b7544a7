// The ipvs mode on a real IPVS kernel: boots the test VM once (test/vm) and runs every *.guest.ts file of this
// folder in it, in order; each guest test comes back as a subtest here.
import { test } from 'node:test';
import { runGuestSuite, reportGuestSuite } from '../vm/guest-suite.ts';
import { vmPrerequisiteProblem } from '../vm/vm.ts';

const FILES = [
  'test/ipvs/netlink.guest.ts',
];

const disabled = process.env.KPROXY_NO_KERNEL_TESTS === '1';

test('ipvs on a real IPVS kernel, in the VM', { skip: disabled ? 'KPROXY_NO_KERNEL_TESTS=1' : false, timeout: 20 * 60_000 }, async (t) => {
  const problem = vmPrerequisiteProblem();
  if (problem !== undefined) throw new Error(problem);
  const run = await runGuestSuite({ files: FILES, timeoutMs: 15 * 60_000 });
  try {
    await reportGuestSuite(t, run, FILES);
  } finally {
    run.vm.dispose();
  }
});
