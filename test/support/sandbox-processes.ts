// The helpers live in src/sim (benches and the hostile-input suite use them too).
export { killProcessesUnder, processesUnder, type SandboxProcess } from '../../src/sim/sandbox-processes.ts';
