#include <amtp/settings.hpp>
#include <iostream>
int main(int argc, char** argv)
{
    if (argc < 2)
        return 64;
    std::cout << "hostname from " << argv[1] << ": " << amtp::load_settings(argv[1]).hostname << "\n";
    return 0;
}
