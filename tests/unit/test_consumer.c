/*
 * test_consumer.c - the consumer's librdkafka configuration: at-least-once offsets, a session timeout
 * short enough that a dead worker's partitions move on soon, and -X properties that override it.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "wk_consumer.h"

static const char *get(rd_kafka_conf_t *conf, const char *key, char *buf, size_t n)
{
	if (rd_kafka_conf_get(conf, key, buf, &n) != RD_KAFKA_CONF_OK)
		return "(unset)";
	return buf;
}

Test(consumer, conf_defaults)
{
	struct wk_consumer_opts o = {.brokers = "127.0.0.1:1", .group_id = "g", .client_id = "c"};
	char err[256], buf[64];
	rd_kafka_conf_t *conf = wk_consumer_conf(&o, err, sizeof(err));
	cr_assert(conf, "wk_consumer_conf: %s", err);
	static const struct {
		const char *key, *want;
	} rows[] = {
		{"group.id", "g"},
		{"enable.auto.offset.store", "false"},
		{"auto.offset.reset", "smallest"} /* librdkafka's name for earliest */,
		/* librdkafka's 45 s held a killed worker's partitions that long (tests/chaos, worker-kill9). */
		{"session.timeout.ms", "10000"},
		{"partition.assignment.strategy", "cooperative-sticky"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *got = get(conf, rows[i].key, buf, sizeof(buf));
		cr_expect_str_eq(got, rows[i].want, "%s: got %s, want %s", rows[i].key, got, rows[i].want);
	}
	rd_kafka_conf_destroy(conf);
}

Test(consumer, conf_x_properties_override)
{
	struct cm_props props = {.n = 1, .key = {"session.timeout.ms"}, .val = {"45000"}};
	struct wk_consumer_opts o = {.brokers = "127.0.0.1:1", .group_id = "g", .client_id = "c", .props = &props};
	char err[256], buf[64];
	rd_kafka_conf_t *conf = wk_consumer_conf(&o, err, sizeof(err));
	cr_assert(conf, "wk_consumer_conf: %s", err);
	const char *got = get(conf, "session.timeout.ms", buf, sizeof(buf));
	cr_expect_str_eq(got, "45000", "-X session.timeout.ms: got %s, want 45000", got);
	rd_kafka_conf_destroy(conf);

	struct cm_props bad = {.n = 1, .key = {"no.such.property"}, .val = {"1"}};
	o.props = &bad;
	cr_expect_null(wk_consumer_conf(&o, err, sizeof(err)), "an unknown property is refused");
}
