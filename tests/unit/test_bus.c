/* The event bus: wildcards, order, re-entrancy, subscribe/unsubscribe during delivery. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "ado/errors.h"

struct rec {
    char log[4096];
    struct ado_bus *bus;
    uint64_t other_id;
    int count;
};

static int record(void *arg, const char *topic, const void *data, size_t len) {
    struct rec *r = arg;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s=%.*s;", topic, (int)len, (const char *)data);
    r->count++;
    return 0;
}

Test(bus, match_rules_for_star_and_gt) {
    cr_assert(ado_bus_match("trn.view", "trn.view"));
    cr_assert(!ado_bus_match("trn.view", "trn.views"));
    cr_assert(!ado_bus_match("trn.view", "trn"));
    cr_assert(ado_bus_match("trn.*", "trn.view"));
    cr_assert(!ado_bus_match("trn.*", "trn.view.x"));
    cr_assert(!ado_bus_match("trn.*", "trn"));
    cr_assert(ado_bus_match("*.view", "trn.view"));
    cr_assert(ado_bus_match("trn.>", "trn.view"));
    cr_assert(ado_bus_match("trn.>", "trn.view.a.b"));
    cr_assert(!ado_bus_match("trn.>", "trn"));
    cr_assert(ado_bus_match(">", "a"));
    cr_assert(ado_bus_match("bridge.in.*.decision", "bridge.in.gov.decision"));
    cr_assert(!ado_bus_match("bridge.in.*.decision", "bridge.in.gov.x.decision"));
    cr_assert(ado_bus_match("*.*.>", "a.b.c"));
    cr_assert(!ado_bus_match("*.*.>", "a.b"));
}

Test(bus, rejects_bad_topics_and_patterns) {
    cr_assert_eq(ado_bus_topic_valid("a.b"), 0);
    cr_assert_eq(ado_bus_topic_valid("a.*"), ADO_EINVAL);
    cr_assert_eq(ado_bus_topic_valid("a..b"), ADO_EINVAL);
    cr_assert_eq(ado_bus_topic_valid(""), ADO_EINVAL);
    cr_assert_eq(ado_bus_topic_valid("a b"), ADO_EINVAL);
    cr_assert_eq(ado_bus_pattern_valid("a.>.b"), ADO_EINVAL);
    cr_assert_eq(ado_bus_pattern_valid("a.*x"), ADO_EINVAL);
    cr_assert_eq(ado_bus_pattern_valid("a.*.>"), 0);
    struct ado_bus *b = ado_bus_new();
    struct rec r = {0};
    cr_assert_eq(ado_bus_subscribe(b, "a..b", NULL, record, &r, NULL), ADO_EINVAL);
    cr_assert_eq(ado_bus_publish(b, "a.*", "x", 1), ADO_EINVAL);
    ado_bus_free(b);
}

Test(bus, delivers_to_matching_subscribers_in_publish_order) {
    struct ado_bus *b = ado_bus_new();
    struct rec exact = {0}, star = {0}, rest = {0}, none = {0};
    ado_bus_subscribe(b, "trn.view", NULL, record, &exact, NULL);
    ado_bus_subscribe(b, "trn.*", NULL, record, &star, NULL);
    ado_bus_subscribe(b, ">", NULL, record, &rest, NULL);
    ado_bus_subscribe(b, "gov.>", NULL, record, &none, NULL);
    for (int i = 0; i < 3; i++) {
        char d[8];
        snprintf(d, sizeof d, "%d", i);
        ado_bus_publish(b, "trn.view", d, strlen(d));
        ado_bus_publish(b, "trn.boost", d, strlen(d));
    }
    cr_assert_str_eq(exact.log, "trn.view=0;trn.view=1;trn.view=2;");
    cr_assert_str_eq(star.log,
                     "trn.view=0;trn.boost=0;trn.view=1;trn.boost=1;trn.view=2;trn.boost=2;");
    cr_assert_str_eq(rest.log, star.log);
    cr_assert_str_eq(none.log, "");
    struct ado_bus_stats st;
    ado_bus_stats(b, &st);
    cr_assert_eq(st.published, 6);
    cr_assert_eq(st.delivered, 3 + 6 + 6);
    ado_bus_free(b);
}

/* A subscriber that publishes: the new event is queued, not delivered recursively. */
static int republish(void *arg, const char *topic, const void *data, size_t len) {
    struct rec *r = arg;
    record(r, topic, data, len);
    if (strcmp(topic, "a.first") == 0) {
        ado_bus_publish(r->bus, "a.second", "2", 1);
        ado_bus_publish(r->bus, "a.third", "3", 1);
        /* Still inside a.first: a.second must not have been delivered yet. */
        size_t n = strlen(r->log);
        snprintf(r->log + n, sizeof r->log - n, "(end first);");
    }
    return 0;
}

Test(bus, publish_from_handler_is_queued_not_recursive) {
    struct ado_bus *b = ado_bus_new();
    struct rec r = {.bus = b};
    struct rec after = {0};
    ado_bus_subscribe(b, "a.*", NULL, republish, &r, NULL);
    ado_bus_subscribe(b, "a.*", NULL, record, &after, NULL);
    ado_bus_publish(b, "a.first", "1", 1);
    cr_assert_str_eq(r.log, "a.first=1;(end first);a.second=2;a.third=3;");
    /* The second subscriber saw a.first before a.second: per-topic publish order. */
    cr_assert_str_eq(after.log, "a.first=1;a.second=2;a.third=3;");
    ado_bus_free(b);
}

/* During delivery: unsubscribe another subscriber and subscribe a new one. */
static int mutate(void *arg, const char *topic, const void *data, size_t len) {
    struct rec *r = arg;
    record(r, topic, data, len);
    if (r->count == 1) {
        cr_assert_eq(ado_bus_unsubscribe(r->bus, r->other_id, NULL), 0);
        cr_assert_eq(ado_bus_subscribe(r->bus, "x.>", NULL, record, r + 1, NULL), 0);
    }
    return 0;
}

Test(bus, subscribe_and_unsubscribe_during_delivery_are_safe) {
    struct ado_bus *b = ado_bus_new();
    static struct rec r[2];
    memset(r, 0, sizeof r);
    r[0].bus = b;
    struct rec victim = {0};
    ado_bus_subscribe(b, "x.y", NULL, mutate, &r[0], NULL);
    ado_bus_subscribe(b, "x.y", NULL, record, &victim, &r[0].other_id);
    ado_bus_publish(b, "x.y", "1", 1);
    ado_bus_publish(b, "x.y", "2", 1);
    cr_assert_str_eq(r[0].log, "x.y=1;x.y=2;");
    /* Unsubscribed before its turn in the first event: it never got anything. */
    cr_assert_str_eq(victim.log, "");
    /* Subscribed during the first event: sees only the second. */
    cr_assert_str_eq(r[1].log, "x.y=2;");
    ado_bus_free(b);
}

/* A subscriber that unsubscribes itself while being called. */
struct selfun {
    struct ado_bus *bus;
    uint64_t id;
    int calls;
};
static int unsub_self(void *arg, const char *topic, const void *data, size_t len) {
    (void)topic, (void)data, (void)len;
    struct selfun *s = arg;
    s->calls++;
    ado_bus_unsubscribe(s->bus, s->id, NULL);
    ado_bus_publish(s->bus, "self.again", "", 0);
    return 0;
}

Test(bus, subscriber_can_unsubscribe_itself) {
    struct ado_bus *b = ado_bus_new();
    struct selfun s = {.bus = b};
    ado_bus_subscribe(b, "self.>", NULL, unsub_self, &s, &s.id);
    ado_bus_publish(b, "self.once", "", 0);
    ado_bus_publish(b, "self.twice", "", 0);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(ado_bus_unsubscribe(b, s.id, NULL), ADO_ENOTFOUND);
    ado_bus_free(b);
}

static void sum_counts(void *arg, const char *topic, uint64_t count) {
    (void)topic;
    *(uint64_t *)arg += count;
}

Test(bus, many_topics_beyond_the_cache_still_deliver) {
    struct ado_bus *b = ado_bus_new();
    struct rec r = {0};
    ado_bus_subscribe(b, "t.*", NULL, record, &r, NULL);
    for (int i = 0; i < 10000; i++) {
        char topic[32];
        snprintf(topic, sizeof topic, "t.n%d", i);
        r.log[0] = 0;
        cr_assert_eq(ado_bus_publish(b, topic, "", 0), 0);
    }
    cr_assert_eq(r.count, 10000);
    uint64_t total = 0;
    ado_bus_topic_counts(b, sum_counts, &total);
    cr_assert_eq(total, 10000, "per-topic counts (including \"other\") add up: %llu",
                 (unsigned long long)total);
    ado_bus_free(b);
}
