/* fqt/tokenizer_export.h — a checkpoint's tokenizer in the formats other tools read.
 *
 * Files written into a checkpoint directory:
 *   tokenizer.json           Hugging Face `tokenizers`: model BPE (vocab, merges in rank
 *                            order), ByteLevel pre-tokenizer (GPT-2's split pattern, no
 *                            prefix space) and decoder, <|endoftext|> as a special token
 *   tokenizer_config.json    for transformers' PreTrainedTokenizerFast / AutoTokenizer
 *   special_tokens_map.json
 *   generation_config.json   bos/eos = <|endoftext|>, fqt sample's default sampling
 *   r50k_base.tiktoken       GPT-2 vocabularies only: base64 token bytes and rank per line
 *   tokenizer.bpe            trained vocabularies only: fqt's own format (fqt sample)
 * Byte-level BPE as in GPT-2: every byte is a token, each written as one printable code
 * point (bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF stand for themselves, the other 68 map to
 * U+0100.. in byte order). GPT-2's merges are not stored in a .tiktoken file; they are
 * recovered: token r's merge is the pair that BPE with the ranks below r leaves of its bytes.
 *
 * Not for: reading these files (fqt reads only its own fqt-bpe and .tiktoken). */
#ifndef FQT_TOKENIZER_EXPORT_H
#define FQT_TOKENIZER_EXPORT_H

#include "fqt/bpe.h"

/* Write the files above into dir (existing files replaced atomically). ctx: the model's
 * context length (model_max_length). Two ids with the same bytes (a trained vocabulary can
 * reach one string by two merge paths): tokenizer.json lists the lower id only, since its
 * vocab is keyed by the token's text. */
fqt_status fqt_tokenizer_export(const fqt_bpe *bpe, const char *dir, int64_t ctx);

/* GPT-2's byte-to-code-point map (the ByteLevel alphabet): the code point for byte b. */
uint32_t fqt_bytelevel_codepoint(unsigned char b);

#endif
