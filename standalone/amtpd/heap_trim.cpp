#include "amtpd/heap_trim.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace amtp::amtpd {

HeapTrimmer::HeapTrimmer(boost::asio::io_context& io, std::chrono::milliseconds delay) : timer_(io), delay_(delay)
{
}

void HeapTrimmer::activity()
{
    dirty_ = true;
    if (!armed_)
        arm();
}

void HeapTrimmer::arm()
{
    armed_ = true;
    timer_.expires_after(delay_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
        armed_ = false;
        if (ec || !dirty_)
            return;
        dirty_ = false;
#if defined(__GLIBC__)
        ::malloc_trim(0);   // releases free pages of every arena (MADV_DONTNEED), not only the top
#endif
        arm();   // one more look: whatever happened during this delay gets its trim too
    });
}

} // namespace amtp::amtpd
