// A C interface to OpenJPH for one frame: what the codec benchmark compares dicomweb-pixel's HTJ2K decoder
// with. Errors (OpenJPH throws std::exception) come back as 0 / -1.
#include <cstdint>
#include <cstring>
#include <exception>
// ojph_arch.h first: the other headers use its OJPH_EXPORT without including it.
#include <ojph_arch.h>
#include <ojph_codestream.h>
#include <ojph_file.h>
#include <ojph_mem.h>
#include <ojph_params.h>

extern "C" {

// Encodes `width` x `height` samples (row by row) losslessly; returns the codestream's size, written to
// `out` if it holds it (else nothing is written), 0 on failure.
size_t ojph_reference_encode(const int32_t *samples, uint32_t width, uint32_t height, uint32_t bits,
                             int is_signed, uint32_t decompositions, uint8_t *out, size_t capacity) {
  try {
    ojph::codestream codestream;
    ojph::param_siz siz = codestream.access_siz();
    siz.set_image_extent(ojph::point(width, height));
    siz.set_num_components(1);
    siz.set_component(0, ojph::point(1, 1), bits, is_signed != 0);
    siz.set_image_offset(ojph::point(0, 0));
    siz.set_tile_size(ojph::size(width, height));
    siz.set_tile_offset(ojph::point(0, 0));
    ojph::param_cod cod = codestream.access_cod();
    cod.set_num_decomposition(decompositions);
    cod.set_block_dims(64, 64);
    cod.set_color_transform(false);
    cod.set_reversible(true);
    codestream.set_planar(false);
    ojph::mem_outfile file;
    file.open();
    codestream.write_headers(&file);
    ojph::ui32 component = 0;
    ojph::line_buf *line = codestream.exchange(NULL, component);
    for (uint32_t row = 0; row < height; ++row) {
      std::memcpy(line->i32, samples + (size_t)row * width, width * sizeof(int32_t));
      line = codestream.exchange(line, component);
    }
    codestream.flush();
    size_t size = (size_t)file.tell();
    if (size <= capacity) std::memcpy(out, file.get_data(), size);
    codestream.close();
    return size;
  } catch (const std::exception &) {
    return 0;
  }
}

// Decodes a codestream of `components` components into `out` (`width` x `height` samples per component,
// component after component, each row by row); 0 on success.
int ojph_reference_decode(const uint8_t *data, size_t length, uint32_t width, uint32_t height,
                          uint32_t components, int32_t *out) {
  try {
    ojph::mem_infile file;
    file.open(data, length);
    ojph::codestream codestream;
    codestream.read_headers(&file);
    codestream.create();
    for (uint32_t row = 0; row < height; ++row) {
      for (uint32_t c = 0; c < components; ++c) {
        ojph::ui32 component = 0;
        ojph::line_buf *line = codestream.pull(component);
        if (component >= components) return -1;
        std::memcpy(out + ((size_t)component * height + row) * width, line->i32, width * sizeof(int32_t));
      }
    }
    codestream.close();
    return 0;
  } catch (const std::exception &) {
    return -1;
}
}
}
