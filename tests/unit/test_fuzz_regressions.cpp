// Every input the fuzz targets (tests/fuzz/, docs/FUZZING.md) found to crash the core
// or break one of its invariants, as a unit test named after the rule it proves. The
// input itself is also a seed of its target's corpus (tests/fuzz/corpus/<target>/
// regression-*), so ctest -L fuzz replays it through the whole target as well.
#include "amtp/address.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

using namespace amtp;

using namespace std::string_literals;

// fuzz_names: "::ff\0\0\0/\0\0\0\0000" parsed as the address ::ff, because inet_pton
// reads a C string and stopped at the first NUL; the bytes after it were never read.
TEST_CASE("An address with an embedded NUL is refused rather than cut short")
{
    CHECK_FALSE(IpAddress::parse("::ff\0\0\0/\0\0\0\0000"s));
    CHECK_FALSE(IpAddress::parse("127.0.0.1\0.evil"s));
    CHECK_FALSE(IpAddress::parse("[::1\0]"s));
    CHECK_FALSE(IpNetwork::parse("10.0.0.0\0/8"s));
    CHECK_FALSE(Endpoint::parse("127.0.0.1\0:26"s));
    CHECK(IpAddress::parse("::ff"));
}
