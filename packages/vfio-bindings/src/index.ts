// Public entry point: the generated constants and codecs plus the hand-written
// runtime they are built on.
export * from './generated';
export { ERR_VFIO_BINDINGS, isBindingsError, type BindingsError, type BindingsErrorProps } from './runtime/errors';
export {
  defineStruct,
  scalarCodec,
  type DecodeOptions,
  type ElementCodec,
  type EncodeInput,
  type EncodeValue,
  type FieldInfo,
  type FieldRow,
  type FlexInfo,
  type PointerArrayInfo,
  type StructCodec,
  type StructExtras,
} from './runtime/codec';
export { SCALAR_SIZE, type ScalarType } from './runtime/scalars';
export { decodeArray, encodeArray } from './runtime/arrays';
export { walkCapabilities, type Capability } from './runtime/capabilities';
export { CAPABILITY_TABLE, type CapabilityEntry, type CapabilityKind, type InfoKind } from './capability-table';
export { decodeIrqSet, encodeIrqSet, type DecodedIrqSet, type IrqSetArgs } from './runtime/irq-set';
