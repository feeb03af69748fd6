// The queue's envelope files (core/src/queue.cpp): parse_entry on arbitrary text,
// as a damaged or hand-edited spool file would hand it over.
//
// Input: the envelope text.
//
// Invariants: an accepted entry has an id, a defined MPC value and at least one
// recipient; what serialize_entry writes of it is accepted back, equal field by
// field, and writes the same text again (a queue that writes an entry it cannot read
// back would lose mail on restart).
#include "fuzz_common.hpp"

#include "amtp/queue.hpp"

#include <string>

using namespace amtp;

namespace {

bool same_entry(const QueueEntry& a, const QueueEntry& b)
{
    if (a.id != b.id || a.sender != b.sender || a.mpc != b.mpc || a.created != b.created ||
        a.next_attempt != b.next_attempt || a.attempts != b.attempts || a.recipients.size() != b.recipients.size())
        return false;
    for (std::size_t i = 0; i < a.recipients.size(); ++i)
        if (a.recipients[i].address != b.recipients[i].address || a.recipients[i].status != b.recipients[i].status ||
            a.recipients[i].last_reply != b.recipients[i].last_reply)
            return false;
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto entry = parse_entry(text);
    if (!entry)
        return 0;
    FUZZ_CHECK(!entry->id.empty());
    FUZZ_CHECK(!entry->recipients.empty());
    FUZZ_CHECK(parse_mpc(entry->mpc.str()).value.has_value());

    const std::string written = serialize_entry(*entry);
    const auto again = parse_entry(written);
    FUZZ_CHECK(again.has_value());
    const std::string rewritten = serialize_entry(*again);
    FUZZ_CHECK(rewritten == written);
    const auto third = parse_entry(rewritten);
    FUZZ_CHECK(third && same_entry(*again, *third));
    (void)entry->finished();
    return 0;
}
