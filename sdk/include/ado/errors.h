/* adonode SDK: error codes.
 *
 * Every function of the SDK returns int: 0 (ADO_OK) on success, a negative ADO_E* code on
 * failure. api->strerror(code) names each code. */
#ifndef ADO_ERRORS_H
#define ADO_ERRORS_H

enum ado_error {
    ADO_OK = 0,
    ADO_EINVAL = -1,     /* an argument is malformed or out of range */
    ADO_ENOMEM = -2,     /* allocation failed or a memory cap was reached */
    ADO_ENOTFOUND = -3,  /* no such key, topic, method, plugin, timer, ... */
    ADO_EEXIST = -4,     /* already registered / already exists */
    ADO_EIO = -5,        /* storage or socket I/O failed */
    ADO_EPERM = -6,      /* not allowed: outside the plugin's namespace, wrong role */
    ADO_EBUSY = -7,      /* resource busy, try again later */
    ADO_ESTATE = -8,     /* called in the wrong lifecycle state or from the wrong thread */
    ADO_ETIMEDOUT = -9,  /* a deadline passed */
    ADO_ELIMIT = -10,    /* a configured bound was reached (queue, size, budget) */
    ADO_ECONFIG = -11,   /* the configuration is invalid */
    ADO_EABI = -12,      /* a plugin was built for another ABI */
    ADO_EPLUGIN = -13,   /* a plugin failed (init, handler, dependency) */
    ADO_ECLOSED = -14,   /* the peer, call or node is gone */
    ADO_EISOLATED = -15, /* the plugin is isolated by its circuit breaker */
};

#endif
