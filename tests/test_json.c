/* tests/test_json.c — the JSON reader and writers: round trips, escapes, errors. */
#include "check.h"
#include "fqt/json.h"

#include <math.h>

static fqt_json *parse(const char *s) {
    fqt_json *j = NULL;
    if (fqt_json_parse(s, strlen(s), &j)) return NULL;
    return j;
}

int main(void) {
    fqt_json *j = parse(" {\"a\": [1, 2.5, -3e2, true, false, null], \"b\": \"x\\u00e9\\n\\ud83d\\ude00\","
                        " \"big\": 9007199254740993, \"o\": {}} ");
    CHECK(j != NULL);
    if (j) {
        const fqt_json *a = fqt_json_get(j, "a");
        CHECK(a && a->type == FQT_JSON_ARR && a->n == 6);
        if (a && a->n == 6) {
            CHECK(a->items[1].num == 2.5);
            CHECK(a->items[2].num == -300.0);
            CHECK(a->items[3].type == FQT_JSON_BOOL && a->items[3].b);
            CHECK(a->items[5].type == FQT_JSON_NULL);
        }
        CHECK(!strcmp(fqt_json_get_str(j, "b", ""), "x\xc3\xa9\n\xf0\x9f\x98\x80"));
        int64_t big = 0;
        CHECK(fqt_json_int64(fqt_json_get(j, "big"), &big) && big == 9007199254740993LL);
        CHECK(fqt_json_get(j, "o") && fqt_json_get(j, "o")->n == 0);
        CHECK(fqt_json_get(j, "missing") == NULL);
        CHECK(fqt_json_get_num(j, "missing", 7.0) == 7.0);
        fqt_json_free(j);
    }
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "[1] x", "{\"a\":01x}",
                         "\"\\q\"", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fqt_json *b = NULL;
        CHECK_MSG(fqt_json_parse(bad[i], strlen(bad[i]), &b) == FQT_ERR_FORMAT && !b, "input '%s'", bad[i]);
        CHECK(strstr(fqt_last_error(), "byte") != NULL);
    }
    /* Deep nesting is refused, not a stack overflow. */
    char deep[200];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = 0;
    fqt_json *d = NULL;
    CHECK(fqt_json_parse(deep, strlen(deep), &d) == FQT_ERR_FORMAT);

    /* Writer round trip: strings with escapes and numbers that need 17 digits. */
    fqt_buf b = {0};
    double vals[] = {0.1, 1.0 / 3.0, 1e-300, -2.5e17, 4096};
    fqt_buf_append(&b, "{\"s\":", 5);
    fqt_buf_json_str(&b, "q\"\\\n\x01z");
    fqt_buf_append(&b, ",\"v\":[", 6);
    for (int i = 0; i < 5; i++) {
        if (i) fqt_buf_append(&b, ",", 1);
        fqt_buf_json_num(&b, vals[i]);
    }
    fqt_buf_append(&b, ",", 1);
    fqt_buf_json_num(&b, NAN);
    fqt_buf_append(&b, "]}", 2);
    j = parse(b.s);
    CHECK_MSG(j != NULL, "%s", b.s);
    if (j) {
        CHECK(!strcmp(fqt_json_get_str(j, "s", ""), "q\"\\\n\x01z"));
        const fqt_json *v = fqt_json_get(j, "v");
        CHECK(v && v->n == 6);
        for (int i = 0; v && i < 5; i++) CHECK_MSG(v->items[i].num == vals[i], "%s", v->items[i].str);
        CHECK(v && v->items[5].type == FQT_JSON_NULL);
        fqt_json_free(j);
    }
    fqt_buf_free(&b);
    return check_finish();
}
