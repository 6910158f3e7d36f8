/*
 * A tiny N-API module for the soak only: glibc's count of the bytes malloc
 * has handed out and not had back (mallinfo2, summed over every arena).
 * RSS also moves with fragmentation and V8's heap sizing; this figure does
 * not, so a native leak shows here even when RSS is noisy. Not part of the
 * library: the bench compiles it next to the C programs.
 */
#include <malloc.h>
#include <node_api.h>

static napi_value in_use(napi_env env, napi_callback_info info)
{
	(void)info;
	struct mallinfo2 m = mallinfo2();
	napi_value out;
	napi_create_double(env, (double)(m.uordblks + m.hblkhd), &out);
	return out;
}

NAPI_MODULE_INIT()
{
	napi_value fn;
	napi_create_function(env, "inUse", NAPI_AUTO_LENGTH, in_use, NULL, &fn);
	napi_set_named_property(env, exports, "inUse", fn);
	return exports;
}
