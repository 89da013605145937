// Paint an inpainting mask over the input image: white = repaint, exported as a black/white PNG.

export class MaskPainter {
  constructor(canvas, image, { brushSize }) {
    this.canvas = canvas;
    this.image = image;
    this.brushSize = brushSize;
    this.painted = false;
    this.ctx = canvas.getContext("2d");
    this.last = null;
    canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture(e.pointerId); this.#stroke(e, true); });
    canvas.addEventListener("pointermove", (e) => { if (e.buttons & 1) this.#stroke(e, false); });
    canvas.addEventListener("pointerup", () => { this.last = null; });
    canvas.addEventListener("pointerleave", () => { this.last = null; });
  }

  /** Size the mask to the image's natural size and clear it. */
  reset() {
    this.canvas.width = this.image.naturalWidth || 1;
    this.canvas.height = this.image.naturalHeight || 1;
    this.clear();
  }

  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
  }

  #stroke(event, start) {
    const rect = this.canvas.getBoundingClientRect();
    const scale = this.canvas.width / rect.width;
    const point = { x: (event.clientX - rect.left) * scale, y: (event.clientY - rect.top) * scale };
    const ctx = this.ctx;
    ctx.strokeStyle = ctx.fillStyle = "#ffffff";
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = this.brushSize() * scale;
    ctx.beginPath();
    if (start || !this.last) {
      ctx.arc(point.x, point.y, ctx.lineWidth / 2, 0, Math.PI * 2);
      ctx.fill();
    } else {
      ctx.moveTo(this.last.x, this.last.y);
      ctx.lineTo(point.x, point.y);
      ctx.stroke();
    }
    this.last = point;
    this.painted = true;
  }

  /** The mask as a data URL: black background, the painted strokes white. */
  toDataURL() {
    const out = document.createElement("canvas");
    out.width = this.canvas.width;
    out.height = this.canvas.height;
    const ctx = out.getContext("2d");
    ctx.fillStyle = "#000000";
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(this.canvas, 0, 0);
    return out.toDataURL("image/png");
  }
}
