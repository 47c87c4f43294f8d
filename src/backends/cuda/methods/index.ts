/**
 * The GPU method registry: which methods of the CPU registry (src/methods) have a GPU implementation,
 * and the one entry point that turns (method id, options) into the pair of device method objects a
 * model runs with, as createAttentionPlan does on the CPU:
 *
 *   deviceMethodIds(): string[]                       methods with a GPU factory (dense first)
 *   checkDeviceMethod(config, id, options): void      every refusal, without touching the GPU
 *   createDeviceAttentionPlan(rt, config, id, options): DeviceMethodPair
 *       the method's object for its phase and dense for the other phase.
 *
 * Options are validated by the CPU registry itself (createAttentionPlan), so an unknown method, an
 * unknown parameter, a bad value or a missing budget fails with exactly the CPU's message. After that
 * come the GPU's own refusals: a method with no GPU implementation, or one that cannot run on this
 * model's shape (head dim, GQA group), each naming the method.
 */
import type { ModelConfig } from '../../../engine/model-config.js';
import { createAttentionPlan, getMethod } from '../../../methods/index.js';
import type { PlanOptions } from '../../../methods/types.js';
import type { CudaRuntime } from '../runtime.js';
import type { DeviceDecodeFactory, DeviceDecodeMethod, DevicePrefillFactory, DevicePrefillMethod } from './contract.js';
import { adaSnapKvDeviceFactory } from './ada-snapkv.js';
import { blockSparseDeviceFactory } from './block-sparse.js';
import { denseDecodeDeviceFactory, densePrefillDeviceFactory } from './dense.js';
import { flexPrefillDeviceFactory } from './flexprefill.js';
import { questDeviceFactory } from './quest.js';
import { sinkLocalDecodeDeviceFactory } from './sink-local-decode.js';
import { sinkLocalPrefillDeviceFactory } from './sink-local-prefill.js';
import { snapKvDeviceFactory } from './snapkv.js';
import { verticalSlashDeviceFactory } from './vertical-slash.js';

/** One GPU implementation: the phase it covers and its factory. */
export type DeviceMethodEntry =
  | { phase: 'prefill'; factory: DevicePrefillFactory }
  | { phase: 'decode'; factory: DeviceDecodeFactory };

/** Sparse methods with a GPU implementation, in the CPU registry's order. */
const SPARSE_DEVICE_METHODS: readonly DeviceMethodEntry[] = [
  { phase: 'prefill', factory: sinkLocalPrefillDeviceFactory },
  { phase: 'prefill', factory: verticalSlashDeviceFactory },
  { phase: 'prefill', factory: flexPrefillDeviceFactory },
  { phase: 'prefill', factory: blockSparseDeviceFactory },
  { phase: 'decode', factory: sinkLocalDecodeDeviceFactory },
  { phase: 'decode', factory: questDeviceFactory },
  { phase: 'decode', factory: snapKvDeviceFactory },
  { phase: 'decode', factory: adaSnapKvDeviceFactory },
];

/** The pair of device method objects a plan (plan.ts) runs with. */
export interface DeviceMethodPair {
  prefill: DevicePrefillMethod;
  decode: DeviceDecodeMethod;
}

function entryOf(methodId: string): DeviceMethodEntry | undefined {
  return SPARSE_DEVICE_METHODS.find((e) => e.factory.methodId === methodId);
}

/** Every method id that runs on the GPU (dense first, then the sparse ones). */
export function deviceMethodIds(): string[] {
  return ['dense', ...SPARSE_DEVICE_METHODS.map((e) => e.factory.methodId)];
}

/** Whether `methodId` has a GPU implementation (says nothing about a model's shape). */
export function hasDeviceMethod(methodId: string): boolean {
  return methodId === 'dense' || entryOf(methodId) !== undefined;
}

/** The registered sparse GPU methods with their phase (bench sparse times each). */
export function listDeviceMethods(): DeviceMethodEntry[] {
  return [...SPARSE_DEVICE_METHODS];
}

/** Why `methodId` has no GPU implementation, naming the ones that do. */
export function noDeviceMethodMessage(methodId: string): string {
  return `${methodId}: no GPU implementation yet (methods on the GPU: ${deviceMethodIds().join(', ')}); run it with --backend cpu`;
}

/**
 * Throws, before anything is allocated, when this (method, options) cannot run on the GPU for this
 * model: the CPU registry's option errors first (identical messages), then a missing GPU
 * implementation, then the factory's reason for this model's shape.
 */
export function checkDeviceMethod(config: ModelConfig, methodId: string, options: PlanOptions = {}): void {
  createAttentionPlan(methodId, options);
  if (methodId === 'dense') return;
  const entry = entryOf(methodId);
  if (!entry) throw new Error(noDeviceMethodMessage(methodId));
  if (entry.phase !== getMethod(methodId).phase) {
    throw new Error(`internal: GPU method ${methodId} is registered for ${entry.phase}, the CPU registry says ${getMethod(methodId).phase}`);
  }
  const reason = entry.factory.unsupported(config);
  if (reason !== null) throw new Error(`${methodId}: cannot run on the GPU for this model (${config.hfArchitecture}): ${reason}`);
}

/** The method's device object for its phase and dense for the other phase (dense in both for 'dense'). */
export function createDeviceAttentionPlan(rt: CudaRuntime, config: ModelConfig, methodId: string, options: PlanOptions = {}): DeviceMethodPair {
  checkDeviceMethod(config, methodId, options);
  const entry = entryOf(methodId);
  const given = { sparsity: options.sparsity, params: options.params };
  return {
    prefill: entry?.phase === 'prefill' ? entry.factory.create(rt, config, given) : densePrefillDeviceFactory.create(rt, config, {}),
    decode: entry?.phase === 'decode' ? entry.factory.create(rt, config, given) : denseDecodeDeviceFactory.create(rt, config, {}),
  };
}
