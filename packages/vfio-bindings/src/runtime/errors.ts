/**
 * Every error the package throws on bad input: a TypeError (wrong type) or a
 * RangeError (wrong value, buffer too short, malformed chain) carrying the
 * struct and field it is about, so callers can match on `code` across realms.
 */
export const ERR_VFIO_BINDINGS = 'ERR_VFIO_BINDINGS';

export interface BindingsErrorProps {
  readonly code: typeof ERR_VFIO_BINDINGS;
  readonly struct: string;
  readonly field: string;
}
export type BindingsError = (TypeError | RangeError) & BindingsErrorProps;

function make<E extends Error>(Ctor: new (msg: string) => E, struct: string, field: string, msg: string): E & BindingsErrorProps {
  const err = new Ctor(`${struct}.${field}: ${msg}`) as E & { code: string; struct: string; field: string };
  err.code = ERR_VFIO_BINDINGS;
  err.struct = struct;
  err.field = field;
  return err as E & BindingsErrorProps;
}

export function bindingsTypeError(struct: string, field: string, msg: string): TypeError & BindingsErrorProps {
  return make(TypeError, struct, field, msg);
}

export function bindingsRangeError(struct: string, field: string, msg: string): RangeError & BindingsErrorProps {
  return make(RangeError, struct, field, msg);
}

/** True for errors thrown by this package (checked by shape, not instanceof, so it works across realms). */
export function isBindingsError(e: unknown): e is BindingsError {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e as { code?: unknown }).code === ERR_VFIO_BINDINGS &&
    typeof (e as { struct?: unknown }).struct === 'string' &&
    typeof (e as { field?: unknown }).field === 'string'
  );
}
