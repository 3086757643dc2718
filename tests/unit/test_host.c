/*
 * test_host.c - the worker's host of bot.findLeads and api.* (wk_host): address classes, URL checks,
 * the findLeads where/orderBy/columns -> SQL builder, and calls refused before any network I/O.
 * Table-driven; each rule has passing and failing rows. Script input must stay data: it may only
 * ever appear in the parameters, never in the SQL text.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "wk_host.h"
#include "wk_metrics.h"

/* ---- address classes ---- */

struct acase {
	char label[48];
	char addr[64];
	int want; /* enum wk_addr_class, or -1: not a numeric address */
};

static const struct acase acases[] = {
	{"IPv4 loopback", "127.0.0.1", WK_ADDR_LOOPBACK},
	{"IPv4 loopback, end of 127/8", "127.255.255.254", WK_ADDR_LOOPBACK},
	{"RFC 1918 10/8", "10.1.2.3", WK_ADDR_PRIVATE},
	{"RFC 1918 172.16/12 low", "172.16.0.1", WK_ADDR_PRIVATE},
	{"RFC 1918 172.16/12 high", "172.31.255.255", WK_ADDR_PRIVATE},
	{"just past 172.16/12", "172.32.0.1", WK_ADDR_PUBLIC},
	{"just before 172.16/12", "172.15.255.255", WK_ADDR_PUBLIC},
	{"RFC 1918 192.168/16", "192.168.1.1", WK_ADDR_PRIVATE},
	{"CGNAT 100.64/10 low", "100.64.0.1", WK_ADDR_CGNAT},
	{"CGNAT 100.64/10 high", "100.127.255.255", WK_ADDR_CGNAT},
	{"just past 100.64/10", "100.128.0.1", WK_ADDR_PUBLIC},
	{"cloud metadata", "169.254.169.254", WK_ADDR_LINK_LOCAL},
	{"IPv4 link-local", "169.254.0.1", WK_ADDR_LINK_LOCAL},
	{"IPv4 unspecified", "0.0.0.0", WK_ADDR_UNSPECIFIED},
	{"this network 0/8", "0.1.2.3", WK_ADDR_UNSPECIFIED},
	{"IPv4 multicast", "224.0.0.1", WK_ADDR_MULTICAST},
	{"IPv4 multicast high", "239.255.255.250", WK_ADDR_MULTICAST},
	{"broadcast", "255.255.255.255", WK_ADDR_RESERVED},
	{"240/4", "240.0.0.1", WK_ADDR_RESERVED},
	{"TEST-NET-1", "192.0.2.1", WK_ADDR_RESERVED},
	{"benchmarking", "198.18.0.1", WK_ADDR_RESERVED},
	{"public 8.8.8.8", "8.8.8.8", WK_ADDR_PUBLIC},
	{"public 1.1.1.1", "1.1.1.1", WK_ADDR_PUBLIC},
	{"public 93.184.216.34", "93.184.216.34", WK_ADDR_PUBLIC},
	{"IPv6 loopback", "::1", WK_ADDR_LOOPBACK},
	{"IPv6 loopback in brackets", "[::1]", WK_ADDR_LOOPBACK},
	{"IPv6 unspecified", "::", WK_ADDR_UNSPECIFIED},
	{"IPv6 link-local", "fe80::1", WK_ADDR_LINK_LOCAL},
	{"IPv6 link-local with zone", "fe80::1%eth0", WK_ADDR_LINK_LOCAL},
	{"ULA fc00::/7 (fc)", "fc00::1", WK_ADDR_UNIQUE_LOCAL},
	{"ULA fc00::/7 (fd)", "fd12:3456:789a::1", WK_ADDR_UNIQUE_LOCAL},
	{"deprecated site-local", "fec0::1", WK_ADDR_UNIQUE_LOCAL},
	{"IPv6 multicast", "ff02::1", WK_ADDR_MULTICAST},
	{"mapped loopback", "::ffff:127.0.0.1", WK_ADDR_LOOPBACK},
	{"mapped private", "::ffff:10.0.0.1", WK_ADDR_PRIVATE},
	{"mapped metadata", "::ffff:169.254.169.254", WK_ADDR_LINK_LOCAL},
	{"mapped metadata, hex", "::ffff:a9fe:a9fe", WK_ADDR_LINK_LOCAL},
	{"mapped public", "::ffff:8.8.8.8", WK_ADDR_PUBLIC},
	{"compatible loopback", "::127.0.0.1", WK_ADDR_LOOPBACK},
	{"NAT64 loopback", "64:ff9b::7f00:1", WK_ADDR_LOOPBACK},
	{"NAT64 public", "64:ff9b::808:808", WK_ADDR_PUBLIC},
	{"6to4 of loopback", "2002:7f00:1::1", WK_ADDR_LOOPBACK},
	{"6to4 of public", "2002:808:808::1", WK_ADDR_PUBLIC},
	{"IPv6 documentation", "2001:db8::1", WK_ADDR_RESERVED},
	{"Teredo", "2001:0:4136:e378::1", WK_ADDR_RESERVED},
	{"outside 2000::/3", "100::1", WK_ADDR_RESERVED},
	{"public IPv6 Cloudflare", "2606:4700:4700::1111", WK_ADDR_PUBLIC},
	{"public IPv6 Google", "2001:4860:4860::8888", WK_ADDR_PUBLIC},
	{"a name is not numeric", "localhost", -1},
	{"short IPv4 is not numeric here", "127.1", -1},
	{"empty", "", -1},
};

ParameterizedTestParameters(host, address_classes)
{
	return cr_make_param_array(struct acase, acases, sizeof(acases) / sizeof(acases[0]));
}

ParameterizedTest(const struct acase *c, host, address_classes)
{
	enum wk_addr_class got;
	int rc = wk_host_addr_classify_text(c->addr, &got);
	if (c->want < 0) {
		cr_expect_eq(rc, -1, "%s: %s was taken as numeric", c->label, c->addr);
		return;
	}
	cr_assert_eq(rc, 0, "%s: %s not parsed", c->label, c->addr);
	cr_expect_eq((int)got, c->want, "%s: got %s, want %s", c->label, wk_host_addr_class_name(got),
		     wk_host_addr_class_name((enum wk_addr_class)c->want));
}

Test(host, classify_takes_sockaddrs)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET};
	inet_pton(AF_INET, "169.254.169.254", &s4.sin_addr);
	cr_expect_eq(wk_host_addr_classify((struct sockaddr *)&s4), WK_ADDR_LINK_LOCAL);
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr);
	cr_expect_eq(wk_host_addr_classify((struct sockaddr *)&s6), WK_ADDR_LOOPBACK);
	struct sockaddr su = {.sa_family = AF_UNIX};
	cr_expect_eq(wk_host_addr_classify(&su), WK_ADDR_RESERVED, "other families are refused");
}

/* ---- URL checks ---- */

struct ucase {
	char label[48];
	char url[120];
	int allow_private;
	char allow_hosts[64];
	int want; /* enum wk_host_outcome */
	char want_host[40];
	char want_err[80];
};

static const struct ucase ucases[] = {
	{"plain https", "https://example.com/x?y=1", 0, "", WK_HOST_OK, "example.com", ""},
	{"http with a port, upper case", "http://EXAMPLE.com:8080/", 0, "", WK_HOST_OK, "example.com", ""},
	{"public IPv4", "http://93.184.216.34/", 0, "", WK_HOST_OK, "93.184.216.34", ""},
	{"public IPv6", "http://[2606:4700:4700::1111]/", 0, "", WK_HOST_OK, "2606:4700:4700::1111", ""},
	{"ftp", "ftp://example.com/f", 0, "", WK_HOST_REFUSED, "", "only http and https URLs are allowed, not ftp"},
	{"file", "file:///etc/passwd", 0, "", WK_HOST_REFUSED, "", "only http and https"},
	{"gopher", "gopher://example.com/", 0, "", WK_HOST_REFUSED, "", "only http and https"},
	{"no scheme", "example.com/x", 0, "", WK_HOST_INVALID, "", "is not a URL"},
	{"empty", "", 0, "", WK_HOST_INVALID, "", "the URL is empty"},
	{"garbage", "http://", 0, "", WK_HOST_INVALID, "", "is not a URL"},
	{"credentials", "http://user:pw@example.com/", 0, "", WK_HOST_INVALID, "", "credentials in the URL"},
	{"credentials hiding a host", "http://example.com@127.0.0.1/", 0, "", WK_HOST_INVALID, "", "credentials"},
	{"loopback", "http://127.0.0.1:8080/", 0, "", WK_HOST_REFUSED, "", "127.0.0.1 is a loopback address (refused)"},
	{"loopback, short form", "http://127.1/", 0, "", WK_HOST_REFUSED, "", "127.0.0.1 is a loopback address"},
	{"loopback, one number", "http://2130706433/", 0, "", WK_HOST_REFUSED, "", "127.0.0.1 is a loopback address"},
	{"loopback, hex", "http://0x7f000001/", 0, "", WK_HOST_REFUSED, "", "127.0.0.1 is a loopback address"},
	{"IPv6 loopback", "http://[::1]:9/", 0, "", WK_HOST_REFUSED, "", "::1 is a loopback address (refused)"},
	{"mapped loopback", "http://[::ffff:127.0.0.1]/", 0, "", WK_HOST_REFUSED, "", "is a loopback address"},
	{"metadata", "http://169.254.169.254/latest/meta-data/", 0, "", WK_HOST_REFUSED, "",
	 "169.254.169.254 is a link-local address (refused)"},
	{"RFC 1918", "https://10.0.0.5/", 0, "", WK_HOST_REFUSED, "", "10.0.0.5 is a private address (refused)"},
	{"CGNAT", "https://100.64.1.1/", 0, "", WK_HOST_REFUSED, "", "a shared (CGNAT) address"},
	{"ULA", "http://[fd00::1]/", 0, "", WK_HOST_REFUSED, "", "fd00::1 is a unique-local address"},
	{"unspecified", "http://0.0.0.0:80/", 0, "", WK_HOST_REFUSED, "", "0.0.0.0 is an unspecified address"},
	{"private allowed by config", "http://10.0.0.5/", 1, "", WK_HOST_OK, "10.0.0.5", ""},
	{"loopback allowed by config", "http://127.0.0.1:9/", 1, "", WK_HOST_OK, "127.0.0.1", ""},
	{"allow-list: exact", "https://api.example.com/v1", 0, "api.example.com,*.hooks.example", WK_HOST_OK,
	 "api.example.com", ""},
	{"allow-list: case", "https://API.Example.COM/", 0, "api.example.com", WK_HOST_OK, "api.example.com", ""},
	{"allow-list: wildcard", "https://a.hooks.example/", 0, "api.example.com,*.hooks.example", WK_HOST_OK,
	 "a.hooks.example", ""},
	{"allow-list: wildcard is not the apex", "https://hooks.example/", 0, "*.hooks.example", WK_HOST_REFUSED, "",
	 "hooks.example is not an allowed host"},
	{"allow-list: other host", "https://evil.example/", 0, "api.example.com", WK_HOST_REFUSED, "",
	 "evil.example is not an allowed host"},
	{"allow-list: suffix trick", "https://api.example.com.evil.example/", 0, "api.example.com", WK_HOST_REFUSED, "",
	 "not an allowed host"},
	{"allow-list does not lift the address check", "http://127.0.0.1/", 0, "127.0.0.1", WK_HOST_REFUSED, "",
	 "loopback"},
};

ParameterizedTestParameters(host, url_checks)
{
	return cr_make_param_array(struct ucase, ucases, sizeof(ucases) / sizeof(ucases[0]));
}

ParameterizedTest(const struct ucase *c, host, url_checks)
{
	struct wk_host_opts o = wk_host_default_opts;
	o.api_allow_private = c->allow_private;
	o.api_allow_hosts = c->allow_hosts;
	char err[300] = "", host[256] = "";
	struct wk_host *h = wk_host_new(NULL, &o, err, sizeof(err));
	cr_assert(h, "%s: %s", c->label, err);
	enum wk_host_outcome got = wk_host_url_check(h, c->url, host, sizeof(host), err, sizeof(err));
	cr_expect_eq((int)got, c->want, "%s: got outcome %d (%s), want %d", c->label, (int)got, err, c->want);
	if (c->want == WK_HOST_OK)
		cr_expect_str_eq(host, c->want_host, "%s: got host '%s', want '%s'", c->label, host, c->want_host);
	else
		cr_expect(strstr(err, c->want_err) != NULL, "%s: got '%s', want '%s'", c->label, err, c->want_err);
	wk_host_free(h);
}

Test(host, url_too_long)
{
	char url[9000], err[200], host[256];
	memset(url, 'a', sizeof(url) - 1);
	memcpy(url, "http://x/", 9);
	url[sizeof(url) - 1] = '\0';
	struct wk_host *h = wk_host_new(NULL, NULL, err, sizeof(err));
	cr_assert(h);
	cr_expect_eq(wk_host_url_check(h, url, host, sizeof(host), err, sizeof(err)), WK_HOST_INVALID);
	cr_expect(strstr(err, "longer than 8192 bytes"), "got '%s'", err);
	wk_host_free(h);
}

Test(host, bad_allow_lists_are_start_up_errors)
{
	static const char *bad[] = {"a b", "http://x", "*.", "x/y", "*"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct wk_host_opts o = wk_host_default_opts;
		o.api_allow_hosts = bad[i];
		char err[200] = "";
		struct wk_host *h = wk_host_new(NULL, &o, err, sizeof(err));
		cr_expect_null(h, "'%s' was accepted", bad[i]);
		cr_expect(strstr(err, "--api-allow-hosts"), "'%s': got '%s'", bad[i], err);
		wk_host_free(h);
	}
	struct wk_host_opts o = wk_host_default_opts;
	o.api_allow_hosts = " a.example , *.b.example,[::1],, ";
	char err[200] = "";
	struct wk_host *h = wk_host_new(NULL, &o, err, sizeof(err));
	cr_expect(h, "got '%s'", err);
	wk_host_free(h);
}

/* ---- findLeads -> SQL ---- */

#define BOT 42
#define NUMERIC_ATTR(k)                                                                                             \
	"(CASE WHEN (attributes->>$" k "::text) ~ '^ *[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]{1,3})? *$' " \
	"THEN (attributes->>$" k "::text)::numeric END)"

struct fcase {
	char label[64];
	char args[300];	  /* the wk_js.h findLeads arguments */
	char want[400];	  /* a fragment of the SQL, or the error when want_err */
	char params[200]; /* all parameters joined with '|' (passing rows) */
	int want_err;
};

static const struct fcase fcases[] = {
	/* the shapes of where */
	{"no where", "{}", " WHERE bot_id = $1::bigint ORDER BY id ASC LIMIT $2::bigint OFFSET $3::bigint", "42|100|0",
	 0},
	{"null where", "{\"where\":null}", " WHERE bot_id = $1::bigint ORDER BY", "42|100|0", 0},
	{"empty where", "{\"where\":[]}", " WHERE bot_id = $1::bigint ORDER BY", "42|100|0", 0},
	{"[field, value]", "{\"where\":[\"name\",\"Ann\"]}", "WHERE bot_id = $1::bigint AND (name = $2::text) ORDER BY",
	 "42|Ann|100|0", 0},
	{"[field, op, value]", "{\"where\":[\"id\",\">\",5]}", "AND (id > $2::bigint) ORDER BY", "42|5|100|0", 0},
	{"a list of conditions",
	 "{\"where\":[[\"name\",\"like\",\"A%\"],[\"status_id\",\"in\",[1,2]],[\"channel\",\"telegram\"]]}",
	 "AND (name LIKE $2::text) AND (status_id IN ($3::bigint, $4::bigint)) AND (channel = $5::text) ORDER BY",
	 "42|A%|1|2|telegram|100|0", 0},
	/* operators */
	{"!= includes empty fields", "{\"where\":[\"name\",\"!=\",\"Ann\"]}", "(name IS DISTINCT FROM $2::text)",
	 "42|Ann|100|0", 0},
	{"<> is !=", "{\"where\":[\"id\",\"<>\",\"7\"]}", "(id IS DISTINCT FROM $2::bigint)", "42|7|100|0", 0},
	{"<= on a time", "{\"where\":[\"created_at\",\"<=\",\"2026-01-21T18:00:00Z\"]}",
	 "(created_at <= $2::timestamptz)", "42|2026-01-21T18:00:00.000000Z|100|0", 0},
	{"operators ignore case and spacing", "{\"where\":[\"name\",\" NOT   Like \",\"B%\"]}",
	 "(name IS NULL OR name NOT LIKE $2::text)", "42|B%|100|0", 0},
	{"not in", "{\"where\":[\"channel\",\"not in\",[\"a\",\"b\"]]}",
	 "(channel IS NULL OR NOT channel IN ($2::text, $3::text))", "42|a|b|100|0", 0},
	{"in an empty list", "{\"where\":[\"id\",\"in\",[]]}", "AND (FALSE)", "42|100|0", 0},
	{"not in an empty list", "{\"where\":[\"id\",\"not in\",[]]}", "AND (TRUE)", "42|100|0", 0},
	{"is null, two elements", "{\"where\":[\"status_id\",\"is null\"]}", "(status_id IS NULL)", "42|100|0", 0},
	{"is not null, three elements", "{\"where\":[\"name\",\"IS NOT NULL\",null]}", "(name IS NOT NULL)", "42|100|0",
	 0},
	{"= null is is null", "{\"where\":[\"name\",null]}", "(name IS NULL)", "42|100|0", 0},
	{"!= null is is not null", "{\"where\":[\"name\",\"!=\",null]}", "(name IS NOT NULL)", "42|100|0", 0},
	{"muted", "{\"where\":[\"muted\",false]}", "(muted = $2::boolean)", "42|false|100|0", 0},
	{"muted as text", "{\"where\":[\"muted\",\"!=\",\"true\"]}", "(muted IS DISTINCT FROM $2::boolean)",
	 "42|true|100|0", 0},
	{"id as a numeric string", "{\"where\":[\"id\",\"-12\"]}", "(id = $2::bigint)", "42|-12|100|0", 0},
	/* tags */
	{"tags contains", "{\"where\":[\"tags\",\"contains\",\"vip\"]}", "(TRUE AND $2::text = ANY(tags))",
	 "42|vip|100|0", 0},
	{"tags, two elements mean contains", "{\"where\":[\"tags\",\"vip\"]}", "(TRUE AND $2::text = ANY(tags))",
	 "42|vip|100|0", 0},
	{"tags not contains a list", "{\"where\":[\"tags\",\"not contains\",[\"a\",\"b\"]]}",
	 "(TRUE AND NOT $2::text = ANY(tags) AND NOT $3::text = ANY(tags))", "42|a|b|100|0", 0},
	/* attributes */
	{"attribute as text", "{\"where\":[\"attributes.lang\",\"en\"]}", "((attributes->>$2::text) = $3::text)",
	 "42|lang|en|100|0", 0},
	{"attr. alias", "{\"where\":[\"attr.lang\",\"!=\",\"en\"]}",
	 "((attributes->>$2::text) IS DISTINCT FROM $3::text)", "42|lang|en|100|0", 0},
	{"attribute = a number compares text", "{\"where\":[\"attr.n\",10]}", "((attributes->>$2::text) = $3::text)",
	 "42|n|10|100|0", 0},
	{"attribute = a real", "{\"where\":[\"attr.n\",0.1]}", "((attributes->>$2::text) = $3::text)", "42|n|0.1|100|0",
	 0},
	{"attribute >= a number is numeric", "{\"where\":[\"attr.score\",\">=\",10]}",
	 "(" NUMERIC_ATTR("2") " >= $3::numeric)", "42|score|10|100|0", 0},
	{"attribute < a numeric string is numeric", "{\"where\":[\"attr.score\",\"<\",\" -9.5e2 \"]}",
	 "(" NUMERIC_ATTR("2") " < $3::numeric)", "42|score| -9.5e2 |100|0", 0},
	{"attribute < a word is text", "{\"where\":[\"attr.city\",\"<\",\"M\"]}",
	 "((attributes->>$2::text) < $3::text)", "42|city|M|100|0", 0},
	{"attribute < a huge exponent is text", "{\"where\":[\"attr.x\",\">\",\"1e99999\"]}",
	 "((attributes->>$2::text) > $3::text)", "42|x|1e99999|100|0", 0},
	{"attribute in", "{\"where\":[\"attr.plan\",\"in\",[\"pro\",1]]}",
	 "((attributes->>$2::text) IN ($3::text, $4::text))", "42|plan|pro|1|100|0", 0},
	{"attribute is null", "{\"where\":[\"attributes.x\",\"is null\"]}", "((attributes->>$2::text) IS NULL)",
	 "42|x|100|0", 0},
	/* script input stays data */
	{"quote in a value", "{\"where\":[\"name\",\"x' OR '1'='1\"]}", "(name = $2::text)", "42|x' OR '1'='1|100|0",
	 0},
	{"SQL in a value", "{\"where\":[\"name\",\"like\",\"%'); DROP TABLE leads; --\"]}", "(name LIKE $2::text)",
	 "42|%'); DROP TABLE leads; --|100|0", 0},
	{"SQL in an attribute key", "{\"where\":[\"attributes.x'); DROP TABLE leads; --\",\"1\"]}",
	 "((attributes->>$2::text) = $3::text)", "42|x'); DROP TABLE leads; --|1|100|0", 0},
	{"SQL in an orderBy attribute key", "{\"order_by\":\"attributes.a; DROP TABLE leads desc\"}",
	 "ORDER BY " NUMERIC_ATTR("2") " DESC NULLS LAST, (attributes->>$2::text) DESC NULLS LAST, id ASC",
	 "42|a; DROP TABLE leads|100|0", 0},
	/* orderBy */
	{"orderBy id desc", "{\"order_by\":\"id desc\"}", "ORDER BY id DESC NULLS LAST LIMIT", "42|100|0", 0},
	{"orderBy, case and spacing", "{\"order_by\":\"  name   DESC ,created_at\"}",
	 "ORDER BY name DESC NULLS LAST, created_at ASC NULLS LAST, id ASC LIMIT", "42|100|0", 0},
	{"orderBy an attribute", "{\"order_by\":\"attributes.score asc\"}",
	 "ORDER BY " NUMERIC_ATTR("2") " ASC NULLS LAST, (attributes->>$2::text) ASC NULLS LAST, id ASC",
	 "42|score|100|0", 0},
	{"orderBy null", "{\"order_by\":null}", "ORDER BY id ASC LIMIT", "42|100|0", 0},
	/* columns */
	{"all columns", "{\"columns\":null}",
	 "SELECT json_build_object('id', id, 'name', name, 'channel', channel, 'status_id', status_id, 'muted', muted, "
	 "'tags', tags, 'attributes', attributes)::text FROM leads WHERE",
	 "42|100|0", 0},
	{"some columns", "{\"columns\":[\"name\",\"id\",\"name\"]}",
	 "SELECT json_build_object('name', name, 'id', id)::text FROM leads", "42|100|0", 0},
	{"columns as a string", "{\"columns\":\"id, created_at\"}",
	 "SELECT json_build_object('id', id, 'created_at', created_at)::text", "42|100|0", 0},
	/* limit and offset */
	{"limit and offset", "{\"limit\":10,\"offset\":20}", "LIMIT $2::bigint OFFSET $3::bigint", "42|10|20", 0},
	{"limit is capped", "{\"limit\":5000}", "LIMIT $2::bigint", "42|100|0", 0},
	{"limit 0 is the cap", "{\"limit\":0,\"offset\":null}", "LIMIT $2::bigint", "42|100|0", 0},

	/* failing rows */
	{"unknown field", "{\"where\":[\"password\",\"x\"]}", "unknown field 'password'", "", 1},
	{"SQL as a field", "{\"where\":[\"name = name OR 1\",\"x\"]}", "unknown field 'name = name OR 1'", "", 1},
	{"SQL as a field, with a quote", "{\"where\":[\"id) OR (1=1\",5]}", "unknown field 'id) OR (1=1'", "", 1},
	{"field case matters", "{\"where\":[\"NAME\",\"x\"]}", "unknown field 'NAME'", "", 1},
	{"bot_id is not a field", "{\"where\":[\"bot_id\",7]}", "unknown field 'bot_id'", "", 1},
	{"attributes alone", "{\"where\":[\"attributes\",\"x\"]}", "use attributes.<name>", "", 1},
	{"empty attribute name", "{\"where\":[\"attr.\",\"x\"]}", "the attribute name in 'attr.' must be 1-255 bytes",
	 "", 1},
	{"unknown operator", "{\"where\":[\"name\",\"~\",\"x\"]}", "unknown operator '~'", "", 1},
	{"SQL as an operator", "{\"where\":[\"name\",\"= 1 OR 1 =\",\"x\"]}", "unknown operator '= 1 OR 1 ='", "", 1},
	{"operator not a string", "{\"where\":[\"name\",1,\"x\"]}", "unknown operator", "", 1},
	{"like on an id", "{\"where\":[\"id\",\"like\",\"1%\"]}", "operator 'like' does not apply to 'id'", "", 1},
	{"contains on a name", "{\"where\":[\"name\",\"contains\",\"A\"]}",
	 "operator 'contains' does not apply to 'name'", "", 1},
	{"= on tags", "{\"where\":[\"tags\",\"=\",\"vip\"]}", "operator '=' does not apply to 'tags'", "", 1},
	{"< on muted", "{\"where\":[\"muted\",\"<\",true]}", "operator '<' does not apply to 'muted'", "", 1},
	{"SQL as an id", "{\"where\":[\"id\",\"1 OR 1=1\"]}", "the value for 'id' must be an integer", "", 1},
	{"fractional id", "{\"where\":[\"id\",1.5]}", "the value for 'id' must be an integer", "", 1},
	{"muted yes", "{\"where\":[\"muted\",\"yes\"]}", "the value for 'muted' must be true or false", "", 1},
	{"bad time", "{\"where\":[\"created_at\",\">\",\"yesterday\"]}", "the value for 'created_at' must match", "",
	 1},
	{"an object as a value", "{\"where\":[\"name\",{\"a\":1}]}", "must be a string, a number or a boolean", "", 1},
	{"in without a list", "{\"where\":[\"id\",\"in\",5]}", "'in' needs a list", "", 1},
	{"null inside in", "{\"where\":[\"id\",\"in\",[1,null]]}", "the value for 'id' must be an integer", "", 1},
	{"contains a number", "{\"where\":[\"tags\",\"contains\",5]}", "needs a tag or a list of tags", "", 1},
	{"empty tag", "{\"where\":[\"tags\",[\"\"]]}", "must be a tag", "", 1},
	{"where as a string", "{\"where\":\"name = 'x'\"}", "where must be", "", 1},
	{"where as an object", "{\"where\":{\"name\":\"x\"}}", "where must be", "", 1},
	{"a condition of four", "{\"where\":[\"name\",\"=\",\"x\",\"y\"]}", "a condition is [field, value]", "", 1},
	{"a condition of one", "{\"where\":[[\"name\"]]}", "a condition is", "", 1},
	{"a list with a non-list", "{\"where\":[[\"name\",\"x\"],\"id\"]}", "a condition is", "", 1},
	{"orderBy unknown", "{\"order_by\":\"password desc\"}", "unknown field 'password'", "", 1},
	{"orderBy SQL", "{\"order_by\":\"id; DROP TABLE leads\"}", "unknown field 'id; DROP TABLE leads'", "", 1},
	{"orderBy SQL, direction", "{\"order_by\":\"(SELECT 1) desc\"}", "unknown field '(SELECT 1)'", "", 1},
	{"orderBy tags", "{\"order_by\":\"tags\"}", "cannot order by 'tags'", "", 1},
	{"orderBy not a string", "{\"order_by\":5}", "orderBy must be a string", "", 1},
	{"orderBy too many", "{\"order_by\":\"id,name,id,name,id,name\"}", "at most 5 fields", "", 1},
	{"unknown column", "{\"columns\":[\"password\"]}", "unknown column 'password'", "", 1},
	{"SQL as a column", "{\"columns\":[\"id, (SELECT 1)\"]}", "unknown column 'id, (SELECT 1)'", "", 1},
	{"attribute as a column", "{\"columns\":\"attributes.x\"}", "unknown column 'attributes.x'", "", 1},
	{"column not a string", "{\"columns\":[1]}", "unknown column '(not a string)'", "", 1},
	{"negative limit", "{\"limit\":-1}", "limit must be a whole number, 0 or more", "", 1},
	{"negative offset", "{\"offset\":-5}", "offset must be a whole number", "", 1},
	{"offset as text", "{\"offset\":\"5\"}", "offset must be a whole number", "", 1},
};

ParameterizedTestParameters(host, find_leads_sql)
{
	return cr_make_param_array(struct fcase, fcases, sizeof(fcases) / sizeof(fcases[0]));
}

ParameterizedTest(const struct fcase *c, host, find_leads_sql)
{
	json_error_t je;
	json_t *args = json_loads(c->args, 0, &je);
	cr_assert(args, "%s: test args: %s", c->label, je.text);
	struct wk_host_query q;
	char err[300] = "";
	int rc = wk_host_find_build(args, BOT, 100, &q, err, sizeof(err));
	json_decref(args);
	if (c->want_err) {
		cr_expect_eq(rc, -1, "%s: accepted: %s", c->label, rc == 0 ? q.sql : "");
		cr_expect(strstr(err, c->want) != NULL, "%s: got '%s', want '%s'", c->label, err, c->want);
		cr_expect_null(q.sql, "%s: no statement on failure", c->label);
		wk_host_query_clear(&q);
		return;
	}
	cr_assert_eq(rc, 0, "%s: %s", c->label, err);
	cr_expect(strstr(q.sql, c->want) != NULL, "%s: got\n%s\nwant a part\n%s", c->label, q.sql, c->want);
	cr_expect(strncmp(q.sql, "SELECT json_build_object(", 25) == 0, "%s: %s", c->label, q.sql);
	cr_expect(strstr(q.sql, "FROM leads WHERE bot_id = $1::bigint") != NULL, "%s: not scoped to the bot: %s",
		  c->label, q.sql);
	cr_expect(!strstr(q.sql, "DROP") && !strstr(q.sql, "\"") && !strstr(q.sql, "--") && !strstr(q.sql, ";"),
		  "%s: script text in the SQL: %s", c->label, q.sql);
	char got[400] = "";
	for (int i = 0; i < q.nparams; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "|" : "", q.params[i]);
	cr_expect_str_eq(got, c->params, "%s: got params %s, want %s", c->label, got, c->params);
	wk_host_query_clear(&q);
	wk_host_query_clear(&q);
}

Test(host, find_leads_caps_conditions_and_in_lists)
{
	json_t *where = json_array();
	for (int i = 0; i < 51; i++)
		json_array_append_new(where, json_pack("[si]", "id", i));
	json_t *args = json_pack("{so}", "where", where);
	struct wk_host_query q;
	char err[300] = "";
	cr_expect_eq(wk_host_find_build(args, BOT, 100, &q, err, sizeof(err)), -1);
	cr_expect(strstr(err, "at most 50 conditions"), "got '%s'", err);
	json_decref(args);

	json_t *list = json_array();
	for (int i = 0; i < 1001; i++)
		json_array_append_new(list, json_integer(i));
	args = json_pack("{s[sso]}", "where", "id", "in", list);
	cr_expect_eq(wk_host_find_build(args, BOT, 100, &q, err, sizeof(err)), -1);
	cr_expect(strstr(err, "at most 1000 values"), "got '%s'", err);
	json_decref(args);

	args = json_pack("{sisi}", "limit", 7, "offset", 3);
	cr_assert_eq(wk_host_find_build(args, BOT, 5, &q, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(q.params[q.nparams - 2], "5", "the configured cap wins");
	wk_host_query_clear(&q);
	json_decref(args);
}

/* ---- calls that never reach the network ---- */

static json_t *call(struct wk_host *h, const char *method, const char *args_json, char *err, size_t n)
{
	struct wk_host_run run;
	const struct wk_js_host *js = wk_host_bind(h, BOT, "job-1", &run);
	cr_assert(js && js->call == wk_host_call && js->ctx == &run);
	json_t *args = json_loads(args_json, 0, NULL);
	cr_assert(args, "test args");
	json_t *res = js->call(js->ctx, method, args, err, n);
	json_decref(args);
	return res;
}

struct rcase {
	char label[48];
	char method[16];
	char args[160];
	char want[100];
	int outcome;
};

static const struct rcase rcases[] = {
	{"numeric loopback", "api.getJson", "{\"url\":\"http://127.0.0.1:1/\"}",
	 "127.0.0.1 is a loopback address (refused)", WK_HOST_REFUSED},
	{"metadata by POST", "api.postJson", "{\"url\":\"http://169.254.169.254/latest\",\"body\":{}}",
	 "169.254.169.254 is a link-local address (refused)", WK_HOST_REFUSED},
	/* a name: refused after DNS resolution, on the address curl was about to connect to */
	{"a name resolving to loopback", "api.getJson", "{\"url\":\"http://localhost:1/\"}", "localhost (",
	 WK_HOST_REFUSED},
	{"a scheme", "api.getJson", "{\"url\":\"file:///etc/passwd\"}", "only http and https", WK_HOST_REFUSED},
	{"a URL that is not a string", "api.getJson", "{\"url\":5}", "the URL is empty", WK_HOST_INVALID},
	{"a Host header", "api.getJson", "{\"url\":\"https://example.com/\",\"headers\":{\"Host\":\"x\"}}",
	 "header 'Host' may not be set", WK_HOST_INVALID},
	{"a header on two lines", "api.getJson",
	 "{\"url\":\"https://example.com/\",\"headers\":{\"X-A\":\"1\\r\\nX-B: 2\"}}", "must be one line",
	 WK_HOST_INVALID},
	{"a bad header name", "api.getJson", "{\"url\":\"https://example.com/\",\"headers\":{\"X A\":\"1\"}}",
	 "header 'X A' may not be set", WK_HOST_INVALID},
	{"findLeads with bad input", "findLeads", "{\"where\":[\"password\",\"x\"]}", "unknown field 'password'",
	 WK_HOST_INVALID},
};

ParameterizedTestParameters(host, refused_calls)
{
	return cr_make_param_array(struct rcase, rcases, sizeof(rcases) / sizeof(rcases[0]));
}

ParameterizedTest(const struct rcase *c, host, refused_calls)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	wk_metrics_init();
	char err[300] = "";
	struct wk_host *h = wk_host_new(NULL, NULL, err, sizeof(err));
	cr_assert(h, "%s", err);
	int m = strcmp(c->method, "findLeads") == 0	? WK_M_HOST_FIND
		: strcmp(c->method, "api.getJson") == 0 ? WK_M_HOST_GET
							: WK_M_HOST_POST;
	long long before = wk_m_host_calls[m][c->outcome].value;
	json_t *res = call(h, c->method, c->args, err, sizeof(err));
	cr_expect_null(res, "%s: not refused", c->label);
	json_decref(res);
	cr_expect(strstr(err, c->want) != NULL, "%s: got '%s', want '%s'", c->label, err, c->want);
	cr_expect_eq(wk_m_host_calls[m][c->outcome].value, before + 1, "%s: counted once under its outcome", c->label);
	wk_host_free(h);
	curl_global_cleanup();
}

Test(host, without_a_database_find_leads_is_not_available)
{
	char err[300] = "";
	struct wk_host *h = wk_host_new(NULL, NULL, err, sizeof(err));
	cr_assert(h);
	json_t *res = call(h, "findLeads", "{\"where\":[\"name\",\"Ann\"]}", err, sizeof(err));
	cr_expect_null(res);
	cr_expect_str_eq(err, "not available here");
	res = call(h, "bot.dropTables", "{}", err, sizeof(err));
	cr_expect_null(res);
	cr_expect_str_eq(err, "unknown host call");
	wk_host_free(h);
}

Test(host, no_host_means_no_calls)
{
	struct wk_host_run run;
	cr_expect_null(wk_host_bind(NULL, BOT, NULL, &run));
}
