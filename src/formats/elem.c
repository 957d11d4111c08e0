/* formats/elem.c — the public scalar codecs (thin wrappers over codec.h), element and
 * scale metadata, and the §4 random bits. Not for: block logic (quant.c). */
#include "codec.h"

uint8_t fqt_e2m1_encode_rne(float x) { return fqt_e2m1_rne_i(x); }
uint8_t fqt_e2m1_encode_sr(float x, uint32_t rnd) { return fqt_e2m1_sr_i(x, rnd); }
float fqt_e2m1_decode(uint8_t code) { return fqt_e2m1_dec_i(code); }
uint8_t fqt_e4m3_encode_rne(float x) { return fqt_e4m3_rne_i(x); }
uint8_t fqt_e4m3_encode_sr(float x, uint32_t rnd) { return fqt_e4m3_sr_i(x, rnd); }
float fqt_e4m3_decode(uint8_t code) { return fqt_e4m3_dec_i(code); }
uint8_t fqt_e5m2_encode_rne(float x) { return fqt_e5m2_rne_i(x); }
uint8_t fqt_e5m2_encode_rne_sat(float x) { return fqt_e5m2_rne_sat_i(x); }
uint8_t fqt_e5m2_encode_sr(float x, uint32_t rnd) { return fqt_e5m2_sr_i(x, rnd); }
float fqt_e5m2_decode(uint8_t code) { return fqt_e5m2_dec_i(code); }
uint8_t fqt_int4_encode_rne(float x) { return fqt_int4_rne_i(x); }
uint8_t fqt_int4_encode_sr(float x, uint32_t rnd) { return fqt_int4_sr_i(x, rnd); }
float fqt_int4_decode(uint8_t code) { return fqt_int4_dec_i(code); }
uint8_t fqt_nf4_encode_rne(float x) { return fqt_nf4_rne_i(x); }
uint8_t fqt_nf4_encode_sr(float x, uint32_t rnd) { return fqt_nf4_sr_i(x, rnd); }
float fqt_nf4_decode(uint8_t code) { return fqt_nf4_value(code); }
uint16_t fqt_bf16_encode_rne(float x) { return fqt_bf16_rne_i(x); }
uint16_t fqt_bf16_encode_sr(float x, uint32_t rnd) { return fqt_bf16_sr_i(x, rnd); }
float fqt_bf16_decode(uint16_t code) { return fqt_bf16_dec_i(code); }
uint16_t fqt_fp16_encode_rne(float x) { return fqt_fp16_rne_i(x); }
uint16_t fqt_fp16_encode_sr(float x, uint32_t rnd) { return fqt_fp16_sr_i(x, rnd); }
float fqt_fp16_decode(uint16_t code) { return fqt_fp16_dec_i(code); }
uint8_t fqt_e8m0_encode_floor(float x) { return fqt_e8m0_floor_i(x); }
float fqt_e8m0_decode(uint8_t code) { return fqt_e8m0_dec_i(code); }
uint8_t fqt_ue4m3_encode_rne(float x) { return fqt_ue4m3_rne_i(x); }
float fqt_ue4m3_decode(uint8_t code) { return fqt_ue4m3_dec_i(code); }

uint32_t fqt_elem_encode(fqt_elem t, float x, fqt_rounding r, uint32_t rnd) {
    return fqt_elem_encode_i(t, x, r, rnd);
}
float fqt_elem_decode(fqt_elem t, uint32_t code) { return fqt_elem_decode_i(t, code); }

typedef struct {
    const char *name;
    int bits;
    float max;
    int emax;
} elem_info;

static const elem_info elem_infos[] = {
    [FQT_ELEM_FP32] = {"fp32", 32, 3.4028235e38f, 127},
    [FQT_ELEM_BF16] = {"bf16", 16, 3.3895314e38f, 127},
    [FQT_ELEM_FP16] = {"fp16", 16, 65504.0f, 15},
    [FQT_ELEM_E2M1] = {"e2m1", 4, 6.0f, 2},
    [FQT_ELEM_E4M3] = {"e4m3", 8, 448.0f, 8},
    [FQT_ELEM_E5M2] = {"e5m2", 8, 57344.0f, 15},
    [FQT_ELEM_INT4] = {"int4", 4, 7.0f, 2},
    [FQT_ELEM_NF4] = {"nf4", 4, 1.0f, 0},
};
FQT_STATIC_ASSERT(sizeof elem_infos / sizeof elem_infos[0] == FQT_ELEM_COUNT,
                  "elem_infos must cover fqt_elem");

static const char *const scale_names[] = {"none", "e8m0", "ue4m3", "fp32"};
FQT_STATIC_ASSERT(sizeof scale_names / sizeof scale_names[0] == FQT_SCALE_COUNT,
                  "scale_names must cover fqt_scale_type");

int fqt_elem_bits(fqt_elem t) { return elem_infos[t].bits; }
float fqt_elem_max(fqt_elem t) { return elem_infos[t].max; }
int fqt_elem_emax(fqt_elem t) { return elem_infos[t].emax; }
const char *fqt_elem_name(fqt_elem t) {
    return (unsigned)t < FQT_ELEM_COUNT ? elem_infos[t].name : "?";
}
const char *fqt_scale_name(fqt_scale_type t) {
    return (unsigned)t < FQT_SCALE_COUNT ? scale_names[t] : "?";
}

fqt_philox_out fqt_philox4x32_10(uint32_t ctr[4], uint32_t key[2]) {
    fqt_philox_out o;
    for (int i = 0; i < 4; i++) o.v[i] = ctr[i];
    fqt_philox_i(o.v, key[0], key[1]);
    return o;
}

uint32_t fqt_sr_bits(uint64_t seed, uint64_t stream, uint64_t index) {
    uint32_t w[4];
    fqt_sr_block4(seed, stream, index >> 2, w);
    return w[index & 3];
}

uint64_t fqt_sr_stream(uint32_t tensor_id, uint32_t role, uint32_t step) {
    return ((uint64_t)step << 32) | ((uint64_t)(tensor_id & 0x1FFFFFFFu) << 3) | (role & 7u);
}
