#include "support/pki.hpp"

#include "support/test_paths.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace amtp::test {

namespace {

// Holds an flock for its lifetime; closing the descriptor releases it, also when a
// test process dies half-way.
class FileLock {
public:
    explicit FileLock(const std::string& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644))
    {
        if (fd_ < 0)
            throw std::runtime_error("cannot open lock " + path + ": " + std::strerror(errno));
        while (::flock(fd_, LOCK_EX) != 0) {
            if (errno != EINTR) {
                const int error = errno;
                ::close(fd_);
                throw std::runtime_error("cannot lock " + path + ": " + std::strerror(error));
            }
        }
    }
    ~FileLock() { ::close(fd_); }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;

private:
    int fd_;
};

std::string build_pki()
{
    const std::filesystem::path work(AMTP_TEST_WORK_DIR);
    std::filesystem::create_directories(work);
    const std::string dir = (work / "pki").string();
    const FileLock lock((work / "pki.lock").string());
    // The script returns at once when an earlier process finished the job.
    const std::string command =
        "bash '" + source_dir() + "/tests/support/make-test-pki.sh' '" + dir + "'";
    if (run_command(command) != 0)
        throw std::runtime_error("test PKI: " + command + " failed");
    return dir;
}

} // namespace

std::string pki_dir()
{
    static std::once_flag once;
    static std::string dir;
    std::call_once(once, [] { dir = build_pki(); });
    return dir;
}

std::string pki_file(const std::string& name)
{
    return pki_dir() + "/" + name;
}

X509StackPtr load_chain(const std::string& pem_file)
{
    const std::string pem = read_file(pem_file);
    const BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    X509StackPtr chain(sk_X509_new_null());
    if (!bio || !chain)
        throw std::runtime_error("out of memory");
    while (X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        X509Ptr owned(certificate);
        if (sk_X509_push(chain.get(), owned.get()) <= 0)
            throw std::runtime_error("out of memory");
        owned.release();
    }
    ERR_clear_error();  // the loop ends on "no start line"
    if (sk_X509_num(chain.get()) == 0)
        throw std::runtime_error("no certificate in " + pem_file);
    return chain;
}

std::vector<std::string> der_chain(const std::string& pem_file)
{
    const X509StackPtr chain = load_chain(pem_file);
    std::vector<std::string> blobs;
    for (int i = 0; i < sk_X509_num(chain.get()); ++i) {
        unsigned char* der = nullptr;
        const int size = i2d_X509(sk_X509_value(chain.get(), i), &der);
        const OpenSslString owned(reinterpret_cast<char*>(der));
        if (size <= 0)
            throw std::runtime_error("cannot encode a certificate of " + pem_file);
        blobs.emplace_back(owned.get(), static_cast<std::size_t>(size));
    }
    return blobs;
}

std::string pki_fact(const std::string& name)
{
    std::string text = read_file(pki_file(name));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
        text.pop_back();
    return text;
}

} // namespace amtp::test
