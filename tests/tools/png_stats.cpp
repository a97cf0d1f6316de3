// png_stats FILE.png: prints "width height nonwhite_fraction distinct_colors"
// for the report-rendering test (a blank or broken page has next to no
// non-white pixels and one or two colours). libpng's simplified API.
#include <png.h>

#include <cstdio>
#include <set>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: png_stats FILE.png\n");
    return 2;
  }
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, argv[1])) {
    std::fprintf(stderr, "%s: %s\n", argv[1], image.message);
    return 2;
  }
  image.format = PNG_FORMAT_RGB;
  std::vector<unsigned char> pixels(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr)) {
    std::fprintf(stderr, "%s: %s\n", argv[1], image.message);
    return 2;
  }
  size_t nonwhite = 0;
  std::set<unsigned> colors;
  const size_t n = static_cast<size_t>(image.width) * image.height;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char* p = &pixels[3 * i];
    if (p[0] < 250 || p[1] < 250 || p[2] < 250) ++nonwhite;
    // Quantized to 5 bits per channel, so antialiasing does not count.
    colors.insert(((p[0] >> 3u) << 10u) | ((p[1] >> 3u) << 5u) | (p[2] >> 3u));
  }
  std::printf("%u %u %.4f %zu\n", image.width, image.height, static_cast<double>(nonwhite) / static_cast<double>(n),
              colors.size());
  return 0;
}
