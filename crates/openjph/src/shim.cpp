// A C interface to OpenJPH (vendored, see vendor/VENDORED.md) for one image held in memory: lossless encoding
// and decoding of native samples of 1 or 2 bytes. OpenJPH reports errors by throwing; every entry point catches
// them and returns the message instead, so no exception crosses into Rust.
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
// ojph_arch.h first: the other headers use its definitions without including it.
#include <ojph_arch.h>
#include <ojph_codestream.h>
#include <ojph_file.h>
#include <ojph_mem.h>
#include <ojph_message.h>
#include <ojph_params.h>

namespace {

// Errors become exceptions carrying OpenJPH's message (its default handler prints to stderr and throws a
// message-less one). Warnings and information are dropped: a server must not write to stdout per request.
class throwing_error : public ojph::message_error {
 public:
  void operator()(int code, const char *, int, const char *fmt, ...) override {
    char text[512];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    char coded[600];
    std::snprintf(coded, sizeof coded, "%s (OpenJPH error 0x%08X)", text, code);
    throw std::runtime_error(coded);
  }
};

class silent_warning : public ojph::message_warning {
 public:
  void operator()(int, const char *, int, const char *, ...) override {}
};

class silent_info : public ojph::message_info {
 public:
  void operator()(int, const char *, int, const char *, ...) override {}
};

// Installs the handlers once (OpenJPH's configuration is global); thread-safe as a function-local static.
void configure_messages() {
  static const bool configured = [] {
    static throwing_error error;
    static silent_warning warning;
    static silent_info info;
    ojph::configure_error(&error);
    ojph::configure_warning(&warning);
    ojph::configure_info(&info);
    return true;
  }();
  (void)configured;
}

void report(const char *message, char *error, size_t error_capacity) {
  if (error != nullptr && error_capacity > 0) {
    std::snprintf(error, error_capacity, "%s", message);
  }
}

// Runs `body`, turning any exception (OpenJPH reports errors by throwing) into -1 and its message.
template <typename Body>
int guarded(char *error, size_t error_capacity, Body body) {
  try {
    return body();
  } catch (const std::exception &e) {
    report(e.what(), error, error_capacity);
    return -1;
  } catch (...) {
    report("OpenJPH failed", error, error_capacity);
    return -1;
  }
}

// Sample `index` of a native frame: `width` bytes little endian, the low `bits` bits, sign-extended if signed.
inline int32_t sample_at(const uint8_t *samples, size_t index, uint32_t width, uint32_t bits, bool is_signed) {
  uint32_t raw = width == 2 ? (uint32_t)samples[2 * index] | ((uint32_t)samples[2 * index + 1] << 8)
                            : (uint32_t)samples[index];
  uint32_t low = bits >= 32 ? raw : raw & ((1u << bits) - 1u);
  if (is_signed && bits < 32 && (low & (1u << (bits - 1))) != 0) {
    return (int32_t)low - (int32_t)(1u << bits);
  }
  return (int32_t)low;
}

// Tiles a decoded codestream may have: far more than any encoder writes for one frame (one, or a few hundred for
// a very large image), far fewer than a hostile codestream could claim.
const unsigned MAX_TILES = 4096;

}  // namespace

extern "C" {

// The shape of an image as native samples: `width` x `height` pixels of `components` samples, each `bytes`
// bytes little endian (1 or 2) of which the low `bits` are the value, signed or not; colour by pixel (R, G, B,
// R, ...) unless `planar`.
struct ojph_shim_image {
  uint32_t width;
  uint32_t height;
  uint32_t components;
  uint32_t bytes;
  uint32_t bits;
  int is_signed;
  int planar;
};

// Encodes `samples` losslessly (reversible 5/3 wavelet with `decompositions` levels, 64 x 64 code blocks, one
// tile), through the reversible colour transform when `colour_transform` and three components. On success
// returns 0 and a buffer from malloc in `*out` (free it with ojph_shim_free) of `*out_size` bytes; otherwise
// returns -1 with a message in `error`.
int ojph_shim_encode(const ojph_shim_image *image, const uint8_t *samples, int colour_transform,
                     uint32_t decompositions, uint8_t **out, size_t *out_size, char *error,
                     size_t error_capacity) {
  configure_messages();
  *out = nullptr;
  *out_size = 0;
  return guarded(error, error_capacity, [&]() -> int {
    const uint32_t components = image->components;
    const bool is_signed = image->is_signed != 0;
    ojph::codestream codestream;
    ojph::param_siz siz = codestream.access_siz();
    siz.set_image_extent(ojph::point(image->width, image->height));
    siz.set_num_components(components);
    for (uint32_t c = 0; c < components; ++c) {
      siz.set_component(c, ojph::point(1, 1), image->bits, is_signed);
    }
    siz.set_image_offset(ojph::point(0, 0));
    siz.set_tile_size(ojph::size(image->width, image->height));
    siz.set_tile_offset(ojph::point(0, 0));
    ojph::param_cod cod = codestream.access_cod();
    cod.set_num_decomposition(decompositions);
    cod.set_block_dims(64, 64);
    cod.set_color_transform(colour_transform != 0 && components == 3);
    cod.set_reversible(true);
    codestream.set_planar(false);
    ojph::mem_outfile file;
    file.open();
    codestream.write_headers(&file);
    const size_t pixels = (size_t)image->width * image->height;
    ojph::ui32 component = 0;
    ojph::line_buf *line = codestream.exchange(NULL, component);
    for (uint32_t row = 0; row < image->height; ++row) {
      for (uint32_t c = 0; c < components; ++c) {
        int32_t *to = line->i32;
        for (uint32_t x = 0; x < image->width; ++x) {
          size_t pixel = (size_t)row * image->width + x;
          size_t index = image->planar ? component * pixels + pixel : pixel * components + component;
          to[x] = sample_at(samples, index, image->bytes, image->bits, is_signed);
        }
        line = codestream.exchange(line, component);
      }
    }
    codestream.flush();
    size_t size = file.get_used_size();
    uint8_t *bytes = (uint8_t *)std::malloc(size > 0 ? size : 1);
    if (bytes == nullptr) {
      codestream.close();
      report("out of memory", error, error_capacity);
      return -1;
    }
    std::memcpy(bytes, file.get_data(), size);
    codestream.close();
    *out = bytes;
    *out_size = size;
    return 0;
  });
}

void ojph_shim_free(uint8_t *bytes) { std::free(bytes); }

// Decodes a codestream that must describe exactly `image` (its size, its number of components, none
// subsampled, bit depths at most `image->bits`), checked before any image-sized allocation, into `out`
// (`out_capacity` bytes, at least width * height * components * bytes), colour by pixel, values clamped to
// their component's bit depth and signedness (as the codestream says) and written in `image->bytes` bytes
// little endian, two's complement when signed (`image->is_signed` and `planar` are not used). Returns 0, or -1 with a message in `error`. `*bit_depth` receives the codestream's largest.
int ojph_shim_decode(const uint8_t *data, size_t length, const ojph_shim_image *image, uint8_t *out,
                     size_t out_capacity, uint32_t *bit_depth, char *error, size_t error_capacity) {
  configure_messages();
  char reason[256];
  return guarded(error, error_capacity, [&]() -> int {
    ojph::mem_infile file;
    file.open(data, length);
    ojph::codestream codestream;
    codestream.read_headers(&file);
    ojph::param_siz siz = codestream.access_siz();
    ojph::point extent = siz.get_image_extent();
    ojph::point offset = siz.get_image_offset();
    uint32_t width = extent.x - offset.x, height = extent.y - offset.y;
    uint32_t components = siz.get_num_components();
    if (extent.x < offset.x || extent.y < offset.y || width != image->width || height != image->height ||
        components != image->components) {
      std::snprintf(reason, sizeof reason,
                    "the codestream holds %u x %u pixels of %u component(s), not the %u x %u of %u the "
                    "data set describes",
                    width, height, components, image->width, image->height, image->components);
      codestream.close();
      report(reason, error, error_capacity);
      return -1;
    }
    uint32_t deepest = 0;
    for (uint32_t c = 0; c < components; ++c) {
      ojph::point sub = siz.get_downsampling(c);
      uint32_t depth = siz.get_bit_depth(c);
      if (sub.x != 1 || sub.y != 1 || depth == 0 || depth > image->bits) {
        std::snprintf(reason, sizeof reason,
                      "component %u of the codestream is %u-bit, subsampled %u x %u; the data set "
                      "describes samples of at most %u bits, not subsampled",
                      c, depth, sub.x, sub.y, image->bits);
        codestream.close();
        report(reason, error, error_capacity);
        return -1;
      }
      deepest = depth > deepest ? depth : deepest;
    }
    // A codestream may claim tiles of one pixel: OpenJPH would build each tile's structures before decoding.
    ojph::size tile = siz.get_tile_size();
    ojph::point tile_offset = siz.get_tile_offset();
    if (tile.w == 0 || tile.h == 0) {
      codestream.close();
      report("the codestream has tiles of no size", error, error_capacity);
      return -1;
    }
    uint64_t across = ((uint64_t)extent.x - tile_offset.x + tile.w - 1) / tile.w;
    uint64_t down = ((uint64_t)extent.y - tile_offset.y + tile.h - 1) / tile.h;
    if (tile_offset.x > offset.x || tile_offset.y > offset.y || across * down > MAX_TILES) {
      std::snprintf(reason, sizeof reason, "the codestream has %llu x %llu tiles (at most %u)",
                    (unsigned long long)across, (unsigned long long)down, MAX_TILES);
      codestream.close();
      report(reason, error, error_capacity);
      return -1;
    }
    const size_t pixels = (size_t)width * height;
    if (out_capacity / image->bytes / components < pixels) {
      codestream.close();
      report("the output buffer is too small", error, error_capacity);
      return -1;
    }
    codestream.set_planar(false);
    codestream.create();
    for (uint32_t row = 0; row < height; ++row) {
      for (uint32_t c = 0; c < components; ++c) {
        ojph::ui32 component = 0;
        ojph::line_buf *line = codestream.pull(component);
        if (line == nullptr || component >= components ||
            (line->flags & ojph::line_buf::LFT_SIZE_MASK) != ojph::line_buf::LFT_32BIT) {
          codestream.close();
          report("OpenJPH gave lines of an unexpected kind", error, error_capacity);
          return -1;
        }
        uint32_t depth = siz.get_bit_depth(component);
        bool is_signed = siz.is_signed(component);
        int32_t low = is_signed ? -(int32_t)(1u << (depth - 1)) : 0;
        int32_t high = is_signed ? (int32_t)((1u << (depth - 1)) - 1) : (int32_t)((1u << depth) - 1);
        const int32_t *from = line->i32;
        for (uint32_t x = 0; x < width; ++x) {
          int32_t value = from[x] < low ? low : (from[x] > high ? high : from[x]);
          size_t index = ((size_t)row * width + x) * components + component;
          if (image->bytes == 2) {
            uint16_t word = (uint16_t)value;
            out[2 * index] = (uint8_t)(word & 0xFF);
            out[2 * index + 1] = (uint8_t)(word >> 8);
          } else {
            out[index] = (uint8_t)value;
          }
        }
      }
    }
    codestream.close();
    *bit_depth = deepest;
    return 0;
  });
}
}
