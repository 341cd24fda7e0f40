// JPEG 2000 reduced-resolution and JPEG DCT-scaled decoding: level / scale choice and rejection of
// bad input. Decoding real streams against pydicom is tested from Python (tests/test_j2k_decode.py).
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "radz/j2k_decode.h"
#include "radz/jpeg_decode.h"

TEST(J2kChooseReduce, KeepsBothSidesAtLeastMinSize) {
  EXPECT_EQ(radz::j2k_choose_reduce(2048, 2048, 5, 224), 3);  // 256 px
  EXPECT_EQ(radz::j2k_choose_reduce(2048, 2048, 5, 256), 3);  // exactly 256
  EXPECT_EQ(radz::j2k_choose_reduce(2048, 2048, 5, 257), 2);  // 512
  EXPECT_EQ(radz::j2k_choose_reduce(2048, 2048, 2, 16), 2);   // capped by the codestream's levels
  EXPECT_EQ(radz::j2k_choose_reduce(1955, 1841, 5, 224), 3);  // ceil(1841 / 8) = 231
  EXPECT_EQ(radz::j2k_choose_reduce(1955, 1841, 5, 231), 3);
  EXPECT_EQ(radz::j2k_choose_reduce(1955, 1841, 5, 232), 2);
  EXPECT_EQ(radz::j2k_choose_reduce(3000, 500, 5, 224), 1);  // the short side decides
  EXPECT_EQ(radz::j2k_choose_reduce(100, 100, 5, 224), 0);   // already smaller: full size
  EXPECT_EQ(radz::j2k_choose_reduce(2048, 2048, 5, 0), 0);   // no minimum: full size
  EXPECT_EQ(radz::j2k_choose_reduce(0, 2048, 5, 16), 0);
}

TEST(J2kDecode, RejectsWhatIsNotJpeg2000) {
  const std::vector<uint8_t> junk = {'n', 'o', 't', ' ', 'j', '2', 'k', '!', 0, 0, 0, 0};
  if (!radz::j2k_available()) {
    EXPECT_THROW(radz::j2k_decode(junk.data(), junk.size(), 0), std::runtime_error);
    return;
  }
  EXPECT_FALSE(radz::openjpeg_version().empty());
  EXPECT_THROW(radz::j2k_decode(junk.data(), junk.size(), 0), std::invalid_argument);
  EXPECT_THROW(radz::j2k_decode(nullptr, 0, 0), std::invalid_argument);
  // A J2K start-of-codestream + SIZ marker with nothing after it: OpenJPEG refuses the header.
  const std::vector<uint8_t> truncated = {0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00};
  EXPECT_THROW(radz::j2k_decode(truncated.data(), truncated.size(), 64), std::invalid_argument);
}

TEST(JpegChooseScale, KeepsBothSidesAtLeastMinSize) {
  EXPECT_EQ(radz::jpeg_choose_scale(2048, 2048, 256), 8);
  EXPECT_EQ(radz::jpeg_choose_scale(2048, 2048, 16), 8);  // 1/8 is libjpeg's smallest scale here
  EXPECT_EQ(radz::jpeg_choose_scale(2048, 2048, 257), 4);
  EXPECT_EQ(radz::jpeg_choose_scale(1955, 1841, 231), 8);  // ceil(1841 / 8) = 231
  EXPECT_EQ(radz::jpeg_choose_scale(1955, 1841, 232), 4);
  EXPECT_EQ(radz::jpeg_choose_scale(100, 100, 224), 1);
  EXPECT_EQ(radz::jpeg_choose_scale(2048, 2048, 0), 1);
}

TEST(JpegDecode, RejectsWhatIsNotJpeg) {
  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0, 0};
  if (!radz::jpeg_available()) {
    EXPECT_THROW(radz::jpeg_decode(gif.data(), gif.size(), 0), std::runtime_error);
    return;
  }
  EXPECT_THROW(radz::jpeg_decode(gif.data(), gif.size(), 0), std::invalid_argument);
  EXPECT_THROW(radz::jpeg_decode(nullptr, 0, 0), std::invalid_argument);
  // SOI + a JFIF APP0 segment and nothing else: libjpeg's error is caught, not an abort.
  const std::vector<uint8_t> truncated = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00};
  EXPECT_THROW(radz::jpeg_decode(truncated.data(), truncated.size(), 64), std::invalid_argument);
}
