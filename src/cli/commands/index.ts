/**
 * Every sub-command module, in the order `--help` lists them. A module exports a function that adds
 * its command(s) to the program. Add one import and one array entry per module.
 */
import type { Command } from 'commander';
import { registerInspect } from './inspect.js';
import { registerGenerate } from './generate.js';
import { registerAnalyze } from './analyze.js';
import { registerReport } from './report.js';
import { registerRun } from './run.js';
import { registerMethods } from './methods.js';
import { registerTasks } from './tasks.js';
import { registerBench } from './bench.js';

export type RegisterCommand = (program: Command) => void;

export const commandModules: RegisterCommand[] = [registerInspect, registerGenerate, registerRun, registerAnalyze, registerReport, registerMethods, registerTasks, registerBench];
