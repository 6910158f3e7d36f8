/*
 * A tiny N-API module for the nested-guest interrupt rows only: pkru()
 * gives the calling thread's PKRU (null without protection keys), so the
 * library's VMM prints it next to C's (c/pkru.h says why it matters). Not
 * part of the library: the bench compiles it next to the C programs.
 */
#define _GNU_SOURCE /* pkru.h's pkey_alloc, unused here */
#include "pkru.h"
#include <node_api.h>

static napi_value pkru(napi_env env, napi_callback_info info)
{
	(void)info;
	uint32_t value;
	napi_value out;
	if (pkru_read(&value) < 0)
		napi_get_null(env, &out);
	else
		napi_create_uint32(env, value, &out);
	return out;
}

NAPI_MODULE_INIT()
{
	napi_value fn;
	napi_create_function(env, "pkru", NAPI_AUTO_LENGTH, pkru, NULL, &fn);
	napi_set_named_property(env, exports, "pkru", fn);
	return exports;
}
