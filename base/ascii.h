#pragma once
// Character-class checks over whole strings, eight bytes per step (SWAR: SIMD within a register).
// A send checks every target's device token again before it goes into a request (hex for APNs,
// printable ASCII and JSON-safe for FCM); byte by byte that was ~10 instructions per character,
// ~4% of a broadcast's instructions in pushhubd (docs/PERFORMANCE.md). Pure functions, any
// thread.

#include <cstdint>
#include <cstring>
#include <string_view>

namespace pushhub::ascii {
namespace detail {

inline constexpr uint64_t kOnes = 0x0101010101010101ULL;
inline constexpr uint64_t kHighBits = 0x8080808080808080ULL;

// For 8 bytes below 0x80 each: the high bit of every byte that is >= n (1 <= n <= 0x80). Adding
// 0x80 - n to a byte below 0x80 cannot carry into the next byte.
constexpr uint64_t atLeast(uint64_t low7, uint8_t n) {
  return (low7 + kOnes * static_cast<uint8_t>(0x80 - n)) & kHighBits;
}

// The high bit of every byte of `w` outside [lo, hi] (0x01 <= lo <= hi < 0x7f).
constexpr uint64_t outside(uint64_t w, uint8_t lo, uint8_t hi) {
  uint64_t low7 = w & ~kHighBits;
  uint64_t inside = atLeast(low7, lo) & ~atLeast(low7, static_cast<uint8_t>(hi + 1));
  return (w | ~inside) & kHighBits;
}

// The high bit of every byte of `w` that is not a hex digit (0-9, a-f, A-F).
constexpr uint64_t notHex(uint64_t w) {
  uint64_t low7 = w & ~kHighBits;
  uint64_t digit = atLeast(low7, '0') & ~atLeast(low7, '9' + 1);
  uint64_t folded = low7 | kOnes * 0x20;  // A-F -> a-f (and nothing else onto a-f)
  uint64_t letter = atLeast(folded, 'a') & ~atLeast(folded, 'f' + 1);
  return (w | ~(digit | letter)) & kHighBits;
}

// The high bit of every byte of `w` equal to `c` (c < 0x80).
constexpr uint64_t equal(uint64_t w, uint8_t c) {
  uint64_t x = w ^ (kOnes * c);  // 0 where equal
  return ~(((x & ~kHighBits) + ~kHighBits) | x) & kHighBits;
}

// ORs `bad(word)` over `s`, eight bytes at a time; the tail is padded with `filler`, a byte
// `bad` accepts.
template <typename Bad>
uint64_t scan(std::string_view s, char filler, Bad bad) {
  uint64_t found = 0;
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    found |= bad(w);
  }
  if (i < s.size()) {
    char tail[8];
    std::memset(tail, filler, sizeof tail);
    std::memcpy(tail, s.data() + i, s.size() - i);
    uint64_t w;
    std::memcpy(&w, tail, 8);
    found |= bad(w);
  }
  return found;
}

}  // namespace detail

// Every byte is 0-9, a-f or A-F (true for an empty string).
inline bool allHex(std::string_view s) { return detail::scan(s, '0', detail::notHex) == 0; }

// Every byte is visible ASCII, 0x21-0x7e: an HTTP request target (true for an empty string).
inline bool allVisible(std::string_view s) {
  return detail::scan(s, '!', [](uint64_t w) { return detail::outside(w, 0x21, 0x7e); }) == 0;
}

// Every byte is visible ASCII, SP or HTAB: an HTTP/1.1 field value without obs-text (true for
// an empty string).
inline bool allFieldText(std::string_view s) {
  return detail::scan(s, ' ', [](uint64_t w) {
           return detail::outside(w, 0x20, 0x7e) & ~detail::equal(w, '\t');
         }) == 0;
}

// Every byte is printable ASCII, 0x20-0x7e (true for an empty string).
inline bool allPrintable(std::string_view s) {
  return detail::scan(s, ' ', [](uint64_t w) { return detail::outside(w, 0x20, 0x7e); }) == 0;
}

// Printable ASCII without '"' and '\': goes into a JSON string as it is.
inline bool allJsonPlain(std::string_view s) {
  return detail::scan(s, ' ', [](uint64_t w) {
           return detail::outside(w, 0x20, 0x7e) | detail::equal(w, '"') | detail::equal(w, '\\');
         }) == 0;
}

}  // namespace pushhub::ascii
