/* Kernel-private: counters and gauges that plugins and kernel parts set, rendered in the
 * Prometheus text format at /metrics. Owned by the loop thread. */
#ifndef ADO_CORE_METRICS_H
#define ADO_CORE_METRICS_H

#include <stddef.h>

struct ado_metrics;

struct ado_metrics *ado_metrics_new(void);
void ado_metrics_free(struct ado_metrics *m);
/* `name` must match [a-zA-Z_:][a-zA-Z0-9_:]*; labels `k="v",...` or NULL. ADO_EINVAL if not;
 * ADO_ELIMIT beyond an internal bound of series. */
int ado_metrics_add(struct ado_metrics *m, const char *name, const char *labels, double d);
int ado_metrics_set(struct ado_metrics *m, const char *name, const char *labels, double v);
/* Append the text exposition of every series to a malloc'd buffer (caller frees). */
char *ado_metrics_render(const struct ado_metrics *m, size_t *len);

#endif
