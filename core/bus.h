/* Kernel-private: the event bus.
 *
 * Topics are dotted names; patterns may use `*` (one segment) and a final `>` (one or more
 * segments). Delivery is in publish order (one global FIFO, so per topic too); publishing
 * from inside a subscriber appends to the queue and returns; the outermost publish drains
 * it. Subscribing and unsubscribing during a delivery are safe. Owned by the loop thread. */
#ifndef ADO_CORE_BUS_H
#define ADO_CORE_BUS_H

#include <stddef.h>
#include <stdint.h>

struct ado_bus;
struct ado_plugin;

/* Kernel-side subscriber: `owner` may be NULL (kernel, RPC clients). Return as ado_bus_fn. */
typedef int (*ado_bus_cb)(void *arg, const char *topic, const void *data, size_t len);

struct ado_bus *ado_bus_new(void);
void ado_bus_free(struct ado_bus *bus);

/* Validate a topic (publish) or a pattern (subscribe): 0 or ADO_EINVAL. */
int ado_bus_topic_valid(const char *topic);
int ado_bus_pattern_valid(const char *pattern);
/* 1 if `pattern` matches `topic`. */
int ado_bus_match(const char *pattern, const char *topic);

int ado_bus_publish(struct ado_bus *bus, const char *topic, const void *data, size_t len);
/* `owner` is used to skip isolated plugins and to count failures against their breaker. */
int ado_bus_subscribe(struct ado_bus *bus, const char *pattern, struct ado_plugin *owner,
                      ado_bus_cb cb, void *arg, uint64_t *id);
/* ADO_ENOTFOUND if `id` is unknown, ADO_EPERM if it belongs to another owner. Pass owner
 * NULL to skip the ownership check (kernel). */
int ado_bus_unsubscribe(struct ado_bus *bus, uint64_t id, struct ado_plugin *owner);
/* Drop every subscription of `owner`. */
void ado_bus_unsubscribe_owner(struct ado_bus *bus, struct ado_plugin *owner);

/* Counters for metrics. */
struct ado_bus_stats {
    uint64_t published, delivered, failed, subscriptions;
};
void ado_bus_stats(const struct ado_bus *bus, struct ado_bus_stats *out);
/* Visit the per-topic publish counts (for /metrics); topics beyond an internal bound are
 * counted under "other". */
void ado_bus_topic_counts(const struct ado_bus *bus,
                          void (*fn)(void *arg, const char *topic, uint64_t count), void *arg);

#endif
