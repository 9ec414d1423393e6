#include "runtime/support/checked_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cerrno>
#include <cstring>

namespace fusec::rt {

std::string ErrnoText(int errnum) {
  std::string text = std::strerror(errnum);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::unique_ptr<CheckedFile> CheckedFile::Create(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "cannot write " + path + ": " + ErrnoText(errno);
    return nullptr;
  }
  return std::unique_ptr<CheckedFile>(new CheckedFile(path, fd));
}

CheckedFile::~CheckedFile() {
  if (fd_ >= 0) ::close(fd_);
}

bool CheckedFile::Fail(const std::string& what, std::string* error) {
  const int errnum = errno;
  *error = what + " " + path_ + ": " + ErrnoText(errnum);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  return false;
}

bool CheckedFile::Write(std::string_view bytes, std::string* error) {
  if (fd_ < 0) {
    *error = "cannot write " + path_ + ": it is closed";
    return false;
  }
  sha256_.Update(bytes);
  const char* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t written = ::write(fd_, data, left);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return Fail("cannot write", error);
    if (written == 0) {  // not an error by POSIX, but nothing more will go
      errno = ENOSPC;
      return Fail("cannot write", error);
    }
    data += written;
    left -= static_cast<size_t>(written);
    size_ += static_cast<uint64_t>(written);
  }
  return true;
}

bool CheckedFile::Finish(std::string* error) {
  if (fd_ < 0) {
    *error = "cannot write " + path_ + ": it is closed";
    return false;
  }
  if (::fsync(fd_) != 0) return Fail("cannot write", error);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    *error = "cannot write " + path_ + ": " + ErrnoText(errno);
    return false;
  }
  return true;
}

bool WriteFileChecked(const std::string& path, std::string_view bytes, std::string* error) {
  std::unique_ptr<CheckedFile> file = CheckedFile::Create(path, error);
  return file && file->Write(bytes, error) && file->Finish(error);
}

bool FsyncDirectory(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    *error = "cannot sync the directory " + path + ": " + ErrnoText(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

bool WriteFileAtomically(const std::string& path, std::string_view bytes, std::string* error) {
  const std::string temporary = path + ".tmp";
  if (!WriteFileChecked(temporary, bytes, error)) return false;
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    *error = "cannot move " + temporary + " into place: " + ErrnoText(errno);
    return false;
  }
  return true;
}

}  // namespace fusec::rt
