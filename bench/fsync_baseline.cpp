// The storage baseline: what the filesystem allows for durable 10 KB messages, done
// the way a Maildir delivery must do it (write, fsync, link into new/, unlink from
// tmp/, fsync the directory), by N threads for a fixed time. No protocol, no TLS.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv)
{
    if (argc != 5) {
        std::cerr << "usage: fsync-baseline DIR THREADS SECONDS SIZE\n";
        return 64;
    }
    const std::string dir = argv[1];
    const int threads = std::stoi(argv[2]);
    const double seconds = std::stod(argv[3]);
    const std::string data(static_cast<std::size_t>(std::stoul(argv[4])), 'x');
    ::mkdir(dir.c_str(), 0700);
    ::mkdir((dir + "/tmp").c_str(), 0700);
    ::mkdir((dir + "/new").c_str(), 0700);
    std::atomic<long> done{0};
    std::atomic<bool> failed{false};
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                            std::chrono::duration<double>(seconds));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t]() {
            const int dfd = ::open((dir + "/new").c_str(), O_RDONLY | O_DIRECTORY);
            for (long i = 0; std::chrono::steady_clock::now() < end; ++i) {
                const std::string name = std::to_string(t) + "." + std::to_string(i);
                const std::string tmp = dir + "/tmp/" + name;
                const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
                if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()) ||
                    ::fsync(fd) != 0 || ::close(fd) != 0 || ::link(tmp.c_str(), (dir + "/new/" + name).c_str()) != 0 ||
                    ::unlink(tmp.c_str()) != 0 || ::fsync(dfd) != 0) {
                    failed = true;
                    break;
                }
                ++done;
            }
            ::close(dfd);
        });
    }
    for (auto& th : pool)
        th.join();
    std::cout << "{\"threads\":" << threads << ",\"completed\":" << done.load() << ",\"rate\":"
              << static_cast<double>(done.load()) / seconds << ",\"failed\":" << (failed ? "true" : "false") << "}"
              << std::endl;
    return failed ? 1 : 0;
}
