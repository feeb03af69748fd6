// Shared by every fuzz target: reading an input as a stream of control bytes and
// payload, and the one way an invariant fails (abort with the rule, so libFuzzer and
// the replay driver both report it as a crash with its reproducer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            std::abort();                                                                        \
        }                                                                                        \
    } while (0)

namespace fuzz {

// Consumes the input from the front: control bytes and length-prefixed pieces.
// Reading past the end yields zeros and empty pieces, never an error.
class Input {
public:
    Input(const std::uint8_t* data, std::size_t size)
        : rest_(reinterpret_cast<const char*>(data), size) {}

    bool empty() const { return rest_.empty(); }
    std::size_t size() const { return rest_.size(); }

    std::uint8_t byte()
    {
        if (rest_.empty())
            return 0;
        const auto b = static_cast<std::uint8_t>(rest_.front());
        rest_.remove_prefix(1);
        return b;
    }

    std::string_view take(std::size_t n)
    {
        const auto piece = rest_.substr(0, n);
        rest_.remove_prefix(piece.size());
        return piece;
    }

    // Up to the next '\n' (excluded, and consumed); the rest when there is none.
    std::string_view line()
    {
        const auto nl = rest_.find('\n');
        const auto piece = rest_.substr(0, nl);
        rest_.remove_prefix(nl == std::string_view::npos ? rest_.size() : nl + 1);
        return piece;
    }

    std::string_view rest()
    {
        const auto piece = rest_;
        rest_ = {};
        return piece;
    }

private:
    std::string_view rest_;
};

// A tiny deterministic generator (xorshift32) for chunk sizes derived from the input.
class Rng {
public:
    explicit Rng(std::uint32_t seed) : state_(seed ? seed : 0x9e3779b9u) {}
    std::uint32_t next()
    {
        state_ ^= state_ << 13;
        state_ ^= state_ >> 17;
        state_ ^= state_ << 5;
        return state_;
    }

private:
    std::uint32_t state_;
};

// Cuts the peer's byte stream into reads as a host would see them: whole lines (their
// line end included) when the seed is 0, the way most hosts read; otherwise 1-64 bytes
// at a time, the sizes drawn from the seed.
class Chunker {
public:
    explicit Chunker(std::uint8_t seed) : whole_lines_(seed == 0), rng_(seed * 2654435761u + 1) {}
    std::string_view next(Input& in)
    {
        if (!whole_lines_)
            return in.take(1 + rng_.next() % 64);
        const auto before = in.size();
        const auto line = in.line();
        return std::string_view(line.data(), before - in.size());
    }

private:
    bool whole_lines_;
    Rng rng_;
};

// AMTP_FUZZ_VERBOSE=1 in the environment: the targets that run a dialogue print it to
// stderr ("< " what they were fed, "> " what came out), for writing seeds.
inline bool verbose()
{
    static const bool on = std::getenv("AMTP_FUZZ_VERBOSE") != nullptr;
    return on;
}

inline void trace(const char* prefix, std::string_view bytes)
{
    if (verbose() && !bytes.empty())
        std::fprintf(stderr, "%s%.*s\n", prefix, static_cast<int>(bytes.size()), bytes.data());
}

inline bool has_control(std::string_view s)
{
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

inline bool has_cr_or_lf(std::string_view s)
{
    return s.find_first_of("\r\n") != std::string_view::npos;
}

// Every line ends in CRLF and no CR or LF appears anywhere else.
inline bool crlf_lines(std::string_view s)
{
    while (!s.empty()) {
        const auto end = s.find("\r\n");
        if (end == std::string_view::npos)
            return false;
        if (has_cr_or_lf(s.substr(0, end)))
            return false;
        s.remove_prefix(end + 2);
    }
    return true;
}

} // namespace fuzz
