// Keeps a bounded part of a command's output: its beginning and its end (the
// first lines say what ran, the last ones why it failed), with a marker where
// the middle was dropped.
#ifndef NAVARCH_BOOTSTRAP_BOUNDED_OUTPUT_H_
#define NAVARCH_BOOTSTRAP_BOUNDED_OUTPUT_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace navarch::bootstrap {

class BoundedOutput {
 public:
  // Keeps at most `limit` bytes of output, plus the marker when some were
  // dropped.
  explicit BoundedOutput(size_t limit);

  void Append(std::string_view data);
  // Bytes appended in all.
  size_t total() const { return total_; }
  bool truncated() const { return total_ > limit_; }
  // The head, then "\n[... N bytes of output dropped ...]\n" and the tail
  // when truncated; everything otherwise.
  std::string Text() const;

 private:
  size_t limit_;
  size_t head_limit_;
  size_t tail_limit_;
  size_t total_ = 0;
  std::string head_;
  // The last bytes seen; trimmed to tail_limit_ when it grows past twice
  // that, so appending stays linear.
  std::string tail_;
};

}  // namespace navarch::bootstrap

#endif  // NAVARCH_BOOTSTRAP_BOUNDED_OUTPUT_H_
