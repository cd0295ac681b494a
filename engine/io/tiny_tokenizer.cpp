#include "engine/io/tiny_tokenizer.h"

#include <iterator>
#include <string>
#include <string_view>

#include "engine/base/error.h"
#include "engine/base/json_writer.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/pretokenizer.h"

namespace qsft {
namespace {

constexpr size_t kBpeVocabSize = 700;

// The training text: written for this project (English prose and chat, Python, C++, JSON tool calls, Chinese).
constexpr std::string_view kCorpus =
    R"text(The quick brown fox jumps over the lazy dog. A small model learns from the text it is given, one token at a time, and the tokenizer decides what a token is. In this tiny tokenizer the most frequent pairs of bytes are merged first, so common English words such as "the", "and", "that", "with" and "model" become single tokens, while rare words are spelled with several pieces.
Training a language model is a loop: read a batch of examples, compute the loss, compute the gradients, and update the weights. With LoRA only two small matrices per layer are trained; the large weights of the base model stay frozen. The learning rate starts low, warms up, and then decays. When the loss goes down and the evaluation loss goes down with it, the model is learning something useful. When the training loss keeps falling but the evaluation loss rises, the model has started to memorize the training data.
User: What is the capital of France?
Assistant: The capital of France is Paris.
User: Can you write a short poem about the sea?
Assistant: The sea is wide, the sea is deep, it sings the sailors off to sleep. The waves come in, the waves go out, and that is what the sea is about.
User: How many days are there in a week?
Assistant: There are seven days in a week: Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday.
User: Please summarize the following paragraph in one sentence.
Assistant: Sure. The paragraph explains that a good dataset matters more than a large one, because the model learns exactly what the examples show it.
You are a helpful assistant. Answer the question as clearly as you can, and say so when you do not know the answer. If a tool can help, call the tool with the right arguments and wait for the result before you answer.
Numbers are split into single digits: 2024, 3.14159, 42, 100, 65536 and 1000000 each become a sequence of digits. Dates like 2025-01-31 and times like 12:30 are split the same way.
def train_step(model, batch, optimizer):
    logits = model(batch["input_ids"])
    loss = cross_entropy(logits, batch["labels"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()

for epoch in range(num_epochs):
    for batch in loader:
        loss = train_step(model, batch, optimizer)
        if step % 10 == 0:
            print(f"epoch {epoch} step {step} loss {loss:.4f}")
        step += 1

#include <vector>
#include <string>

int main(int argc, char** argv) {
  std::vector<float> weights(1024, 0.0f);
  for (size_t i = 0; i < weights.size(); ++i) {
    weights[i] = float(i) / float(weights.size());
  }
  if (argc > 1) {
    std::string name = argv[1];
    return name.empty() ? 1 : 0;
  }
  return 0;
}

{"name": "get_weather", "arguments": {"city": "Beijing", "unit": "celsius"}}
{"name": "search", "arguments": {"query": "open source language models", "max_results": 5}}
{"role": "user", "content": "What is the weather in Beijing today?"}
{"role": "assistant", "content": "It is sunny in Beijing today, with a high of 25 degrees."}
我们今天学习如何训练一个小的语言模型。模型从数据中学习，数据的质量非常重要。
请用一句话介绍你自己。我是一个有用的助手，可以回答问题，也可以帮助你写代码。
北京是中国的首都，上海是中国最大的城市。今天天气很好，我们去公园散步吧。
学习率太大，模型会不稳定；学习率太小，模型学得很慢。训练的时候要注意损失的变化。
你好！有什么可以帮助你的吗？我想学习中文，也想学习编程。
A tokenizer turns text into numbers and numbers back into text. Byte-level BPE starts from the 256 possible bytes, so it can encode any string, even one it has never seen before: emoji, accents like café and naïve, or a language it was not trained on. The merges only make common strings shorter.
The data pipeline reads each record, renders the conversation with the chat template, and marks which tokens belong to the assistant. Only those tokens are trained; the system prompt and the user messages are context. Short sequences are packed together into one row so that no compute is wasted on padding.
Checkpoints are written to a temporary name and renamed when complete, so that a crash never leaves a broken checkpoint behind. A run can be resumed from the last checkpoint with the same data order and the same random state.
User: Write a function that adds two numbers.
Assistant: Here is a simple function that adds two numbers and returns the result.
def add(a, b):
    return a + b
User: Translate "good morning" into Chinese.
Assistant: "Good morning" in Chinese is 早上好.
class Config:
    def __init__(self, learning_rate=0.0002, batch_size=8, max_length=1024):
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
数据、模型和训练方法都很重要。我们先准备数据，然后训练模型，最后评估模型的效果。
)text";

// The Qwen2.5-Instruct chat template, byte for byte as in Qwen/Qwen2.5-*-Instruct tokenizer_config.json
// ("chat_template"; Apache-2.0, Alibaba Cloud Qwen team).
constexpr const char* kQwen25ChatTemplate = R"jinja({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)jinja";

Json added_token(int64_t id, const char* content, bool special) {
  return Json::object()
      .set("id", id)
      .set("content", content)
      .set("single_word", false)
      .set("lstrip", false)
      .set("rstrip", false)
      .set("normalized", false)
      .set("special", special);
}

struct AddedToken {
  const char* content;
  bool special;
};
constexpr AddedToken kAddedTokens[] = {{"<|endoftext|>", true},
                                       {"<|im_start|>", true},
                                       {"<|im_end|>", true},
                                       {"<tool_call>", false},
                                       {"</tool_call>", false}};

Json byte_level() {
  return Json::object()
      .set("type", "ByteLevel")
      .set("add_prefix_space", false)
      .set("trim_offsets", false)
      .set("use_regex", false);
}

// tokenizer.json in the key order and structure of Qwen2.5's.
std::string tokenizer_json(const ByteLevelBpe& bpe) {
  Json added = Json::array();
  int64_t id = int64_t(bpe.vocab.size());
  for (auto& t : kAddedTokens) added.push(added_token(id++, t.content, t.special));
  Json split = Json::object()
                   .set("type", "Split")
                   .set("pattern", Json::object().set("Regex", kQwen2SplitPattern))
                   .set("behavior", "Isolated")
                   .set("invert", false);
  Json vocab = Json::object();
  for (size_t i = 0; i < bpe.vocab.size(); ++i) vocab.set(bpe.vocab[i], i);
  Json merges = Json::array();
  for (auto& [left, right] : bpe.merges) merges.push(left + " " + right);
  Json model = Json::object()
                   .set("type", "BPE")
                   .set("dropout", nullptr)
                   .set("unk_token", nullptr)
                   .set("continuing_subword_prefix", "")
                   .set("end_of_word_suffix", "")
                   .set("fuse_unk", false)
                   .set("byte_fallback", false)
                   .set("vocab", std::move(vocab))
                   .set("merges", std::move(merges));
  Json j = Json::object()
               .set("version", "1.0")
               .set("truncation", nullptr)
               .set("padding", nullptr)
               .set("added_tokens", std::move(added))
               .set("normalizer", Json::object().set("type", "NFC"))
               .set("pre_tokenizer", Json::object()
                                         .set("type", "Sequence")
                                         .set("pretokenizers", Json::array({std::move(split), byte_level()})))
               .set("post_processor", byte_level())
               .set("decoder", byte_level())
               .set("model", std::move(model));
  return j.dump({.indent = 2}) + "\n";
}

// tokenizer_config.json with the fields of Qwen2.5-Instruct's.
std::string tokenizer_config_json(int64_t first_added_id, int64_t model_max_length) {
  Json decoder = Json::object();
  int64_t id = first_added_id;
  for (auto& t : kAddedTokens)
    decoder.set(std::to_string(id++), Json::object()
                                          .set("content", t.content)
                                          .set("lstrip", false)
                                          .set("normalized", false)
                                          .set("rstrip", false)
                                          .set("single_word", false)
                                          .set("special", t.special));
  Json j = Json::object()
               .set("add_bos_token", false)
               .set("add_prefix_space", false)
               .set("added_tokens_decoder", std::move(decoder))
               .set("additional_special_tokens", Json::array({"<|im_start|>", "<|im_end|>"}))
               .set("bos_token", nullptr)
               .set("chat_template", kQwen25ChatTemplate)
               .set("clean_up_tokenization_spaces", false)
               .set("eos_token", "<|im_end|>")
               .set("errors", "replace")
               .set("model_max_length", model_max_length)
               .set("pad_token", "<|endoftext|>")
               .set("split_special_tokens", false)
               .set("tokenizer_class", "Qwen2Tokenizer")
               .set("unk_token", nullptr);
  return j.dump({.indent = 2, .sort_keys = true}) + "\n";
}

}  // namespace

TinyTokenizer write_tiny_tokenizer(const std::filesystem::path& dir, int64_t model_max_length) {
  ByteLevelBpe bpe = train_byte_level_bpe(kCorpus, kBpeVocabSize);
  QSFT_CHECK(bpe.vocab.size() == kBpeVocabSize, "the built-in text yields too few merges");
  int64_t first_added = int64_t(bpe.vocab.size());
  write_file_atomic(dir / "tokenizer.json", tokenizer_json(bpe));
  write_file_atomic(dir / "tokenizer_config.json", tokenizer_config_json(first_added, model_max_length));
  TinyTokenizer t;
  t.vocab_size = first_added + int64_t(std::size(kAddedTokens));
  t.endoftext_id = first_added;
  t.im_start_id = first_added + 1;
  t.im_end_id = first_added + 2;
  return t;
}

}  // namespace qsft
