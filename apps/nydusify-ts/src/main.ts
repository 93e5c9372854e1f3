import { processIo, runNydusify } from '@nydus-ts/cli';

process.exitCode = await runNydusify(process.argv.slice(2), processIo());
