// A file descriptor owner shared by the core's storage code (Maildir, queue).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <utility>

namespace amtp {

// Owns one file descriptor. close() is explicit where its error matters (the
// message file: NFS and some quota implementations report write errors only there).
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept
    {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }
    void reset()
    {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }
    // Closes and returns 0 or the errno of close(). Not retried on EINTR: on Linux the
    // descriptor is gone either way.
    int close()
    {
        const int fd = std::exchange(fd_, -1);
        if (fd >= 0 && ::close(fd) != 0)
            return errno;
        return 0;
    }

private:
    int fd_ = -1;
};


inline int write_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return EIO;   // cannot happen for a regular file; never loop forever
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return 0;
}

} // namespace amtp
