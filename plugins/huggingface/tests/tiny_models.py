"""Tiny randomly initialised models in the sentence-transformers folder layout, built from a
config inside the tests: they go through the same loading code as a user's model."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertModel,
    DistilBertConfig,
    DistilBertModel,
    MPNetConfig,
    MPNetModel,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaModel,
    T5Config,
    T5EncoderModel,
    XLMRobertaConfig,
    XLMRobertaModel,
)

#: Wider than the transformers default (0.02), so attention is far from uniform and a wrong
#: mask, position or bias changes the vectors well past the tests' 0.99999 cosine.
INIT_RANGE = 0.2

WORDS = (
    "the a cat dog sat on mat query passage represent document question computer science what "
    "is rain cats dogs here it raining naïve café 日本語 🙂 text number quarterly revenue grew by "
    "twelve percent photosynthesis turns light into chemical energy recipe for sourdough bread "
    "needs patience"
).split()


def _word_tokenizer(specials: list[str], template: tuple[str, str]) -> Tokenizer:
    vocab = {token: i for i, token in enumerate([*specials, *WORDS, "[UNK]"])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    single, pair = template
    used = {t for t in (single + " " + pair).split() if t in vocab}
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(t, vocab[t]) for t in sorted(used)]
    )
    return tokenizer


def _save(model: torch.nn.Module, tokenizer: Tokenizer, out: Path, **special: str) -> Path:
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special).save_pretrained(out)
    return out


def _bert_tokenizer() -> Tokenizer:
    return _word_tokenizer(
        ["[PAD]", "[CLS]", "[SEP]"], ("[CLS] $A [SEP]", "[CLS] $A [SEP] $B [SEP]")
    )


def _roberta_tokenizer() -> Tokenizer:
    return _word_tokenizer(["<s>", "<pad>", "</s>"], ("<s> $A </s>", "<s> $A </s> </s> $B </s>"))


_ROBERTA_SPECIALS = {
    "pad_token": "<pad>",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "[UNK]",
}
_BERT_SPECIALS = {
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "unk_token": "[UNK]",
}


def bert(out: Path, hidden_act: str = "gelu") -> Path:
    torch.manual_seed(0)
    tokenizer = _bert_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_act=hidden_act,
        initializer_range=INIT_RANGE,
    )
    return _save(
        BertModel(config),
        tokenizer,
        out,
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
    )


def t5(out: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = _word_tokenizer(["<pad>", "</s>"], ("$A </s>", "$A </s> $B </s>"))
    config = T5Config(
        vocab_size=tokenizer.get_vocab_size(),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return _save(
        T5EncoderModel(config),
        tokenizer,
        out,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="[UNK]",
    )


def roberta(out: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = _roberta_tokenizer()
    config = RobertaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=1,
        type_vocab_size=1,
        initializer_range=INIT_RANGE,
    )
    return _save(RobertaModel(config), tokenizer, out, **_ROBERTA_SPECIALS)


def distilbert(out: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = _bert_tokenizer()
    config = DistilBertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=64,
        pad_token_id=0,
        initializer_range=INIT_RANGE,
    )
    return _save(DistilBertModel(config), tokenizer, out, **_BERT_SPECIALS)


def mpnet(out: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = _roberta_tokenizer()
    config = MPNetConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=80,
        relative_attention_num_buckets=32,
        pad_token_id=1,
        initializer_range=INIT_RANGE,
    )
    model = MPNetModel(config)
    with torch.no_grad():  # large enough that dropping or misplacing the bias shows
        model.encoder.relative_attention_bias.weight.normal_(0, 2.0)
    return _save(model, tokenizer, out, **_ROBERTA_SPECIALS)


def xlm_roberta(out: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = _word_tokenizer(
        ["<s>", "<pad>", "</s>"], ("<s> $A </s>", "<s> $A </s> </s> $B </s>")
    )
    config = XLMRobertaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
        pad_token_id=1,
        type_vocab_size=1,
    )
    return _save(
        XLMRobertaModel(config),
        tokenizer,
        out,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="[UNK]",
    )


def sentence_transformer_folder(
    transformer: Path,
    out: Path,
    *,
    pooling: str,
    dense: int | None = None,
    normalize: bool = False,
    max_seq_length: int = 48,
    prompts: dict[str, str] | None = None,
    include_prompt: bool = True,
) -> Path:
    """Wrap a saved transformer as sentence-transformers would save it, with ST itself."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models

    torch.manual_seed(1)
    word = st_models.Transformer(str(transformer), max_seq_length=max_seq_length)
    if hasattr(word, "get_embedding_dimension"):  # sentence-transformers >= 6
        width = word.get_embedding_dimension()
    else:
        width = word.get_word_embedding_dimension()
    modules: list[torch.nn.Module] = [
        word,
        st_models.Pooling(width, pooling_mode=pooling, include_prompt=include_prompt),
    ]
    if dense:
        modules.append(st_models.Dense(width, dense, activation_function=torch.nn.Tanh()))
    if normalize:
        modules.append(st_models.Normalize())
    SentenceTransformer(modules=modules, prompts=prompts or {}).save(str(out))
    return out
