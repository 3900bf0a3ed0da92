// `zguard passwd`: set a user's password in a woodhouse password file. The
// password comes from standard input (first line) or, on a terminal, from a
// prompt with echo turned off; it is never taken from the command line.
#include <termios.h>
#include <unistd.h>

#include <iostream>

#include <sodium.h>

#include "broker/auth/password_file.hpp"
#include "broker/cli/commands.hpp"

namespace zguard::cli {
namespace {

std::string ReadSecretLine(const char* prompt) {
  std::string line;
  const bool terminal = isatty(STDIN_FILENO) != 0;
  termios saved{};
  if (terminal) {
    std::cerr << prompt << std::flush;
    tcgetattr(STDIN_FILENO, &saved);
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::getline(std::cin, line);
  if (terminal) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    std::cerr << '\n';
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

int RunPasswd(const PasswdOptions& options) {
  std::string password = ReadSecretLine("password: ");
  if (password.empty()) {
    std::cerr << "passwd: empty password refused\n";
    return 1;
  }
  if (isatty(STDIN_FILENO) != 0) {
    std::string again = ReadSecretLine("again: ");
    const bool same = again == password;
    sodium_memzero(again.data(), again.size());
    if (!same) {
      sodium_memzero(password.data(), password.size());
      std::cerr << "passwd: the passwords differ\n";
      return 1;
    }
  }
  const auto problem = auth::SetPassword(options.file, options.user, password, options.roles);
  sodium_memzero(password.data(), password.size());
  if (problem) {
    std::cerr << "passwd: " << *problem << '\n';
    return 1;
  }
  std::cerr << "passwd: set the password of " << options.user << " in " << options.file << '\n';
  return 0;
}

}  // namespace zguard::cli
