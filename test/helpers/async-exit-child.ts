// Child process of test/async.test.ts: a script that uses two matrix workers, closes one and
// forgets the other, then returns from its module. It must exit by itself (no handle left open).
import { createMatrixWorker } from '../../src/async/index.js';

const m = { n: 2, data: Float64Array.from([2, 1, 1, 2]) };
const kept = createMatrixWorker();
const closed = createMatrixWorker();
const a = await kept.eigh([{ n: 2, data: m.data.slice() }]);
const b = closed.submitEigh([{ n: 2, data: m.data.slice() }]).wait();
await closed.close();
process.stdout.write(JSON.stringify({ modes: [kept.mode, closed.mode], values: [...a[0]!.values, ...b[0]!.values] }));
