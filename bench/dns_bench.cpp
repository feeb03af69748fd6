// amtp-dns-bench: the resolver layer alone. PTR lookups of N addresses through the
// core's asynchronous libunbound resolver, all in flight together: first with a cold
// cache, then the same addresses again with a warm one. Prints one JSON object with
// the latency of each lookup (p50, p99) and the lookups per second of each pass.
#include "amtp/resolver.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;

namespace {

struct Pass {
    double seconds = 0;
    std::vector<double> ms;
    unsigned answers = 0;
};

Pass run(amtp::Resolver& r, const std::vector<amtp::IpAddress>& addresses)
{
    Pass p;
    const auto begin = Clock::now();
    for (const auto& a : addresses) {
        const auto start = Clock::now();
        r.async_ptr(a, [&p, start](amtp::DnsResult res) {
            p.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
            if (res.status == amtp::DnsStatus::answer)
                ++p.answers;
        });
    }
    while (r.pending() > 0) {
        pollfd pfd{r.fd(), POLLIN, 0};
        ::poll(&pfd, 1, 100);
        r.process();
    }
    p.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
    std::sort(p.ms.begin(), p.ms.end());
    return p;
}

double pct(const std::vector<double>& v, double q)
{
    return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::cerr << "usage: amtp-dns-bench FORWARDER COUNT   (PTRs of 127.1.0.1 ... must exist)\n";
        return 64;
    }
    amtp::ResolverOptions o;
    o.forwarder = argv[1];
    o.nodefault_zones = {"test.", "127.in-addr.arpa."};
    amtp::Resolver r(o);
    const int count = std::stoi(argv[2]);
    std::vector<amtp::IpAddress> addresses;
    for (int i = 0; i < count; ++i)
        addresses.push_back(*amtp::IpAddress::parse("127.1." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250)));
    const Pass cold = run(r, addresses);
    const Pass warm = run(r, addresses);
    std::cout << "{\"count\":" << count << ",\"cold\":{\"answers\":" << cold.answers << ",\"p50_ms\":" << pct(cold.ms, 0.5)
              << ",\"p99_ms\":" << pct(cold.ms, 0.99) << ",\"rate\":" << count / cold.seconds << "},\"warm\":{\"answers\":"
              << warm.answers << ",\"p50_ms\":" << pct(warm.ms, 0.5) << ",\"p99_ms\":" << pct(warm.ms, 0.99)
              << ",\"rate\":" << count / warm.seconds << "}}" << std::endl;
    return cold.answers == static_cast<unsigned>(count) && warm.answers == static_cast<unsigned>(count) ? 0 : 1;
}
