// Runs around every test file: whatever a helper started and the file did not stop (a hook that
// timed out, a set-up that failed half-way) is stopped when the file ends.
import { afterAll } from 'vitest';
import { stopTracked } from './processes.ts';

afterAll(stopTracked);
