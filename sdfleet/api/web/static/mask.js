// Paint an inpainting mask over the input image: white = repaint, exported as a black/white PNG.
// Brush and eraser, undo (per stroke), zoom, and loading a stored mask back (reuse parameters).

const UNDO_DEPTH = 30;

export class MaskPainter {
  constructor(canvas, image, { brushSize, tool = () => "brush", onChange = () => {} }) {
    Object.assign(this, { canvas, image, brushSize, tool, onChange });
    this.painted = false;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.last = null;
    this.history = [];
    canvas.addEventListener("pointerdown", (e) => {
      canvas.setPointerCapture(e.pointerId);
      this.#remember();
      this.#stroke(e, true);
    });
    canvas.addEventListener("pointermove", (e) => { if (e.buttons & 1) this.#stroke(e, false); });
    canvas.addEventListener("pointerup", () => {
      this.last = null;
      if (this.tool() === "eraser") this.painted = this.#anyPainted();
      this.onChange();
    });
    canvas.addEventListener("pointerleave", () => { this.last = null; });
  }

  /** Size the mask to the image's natural size and clear it (and its undo history). */
  reset() {
    this.canvas.width = this.image.naturalWidth || 1;
    this.canvas.height = this.image.naturalHeight || 1;
    this.history = [];
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
  }

  clear() {
    this.#remember();
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
    this.onChange();
  }

  get canUndo() { return this.history.length > 0; }

  undo() {
    const previous = this.history.pop();
    if (!previous) return;
    this.ctx.putImageData(previous.data, 0, 0);
    this.painted = previous.painted;
    this.onChange();
  }

  /** Draw a stored black/white mask (white = repaint) onto the canvas. */
  async load(blob) {
    const bitmap = await createImageBitmap(blob);
    const scratch = document.createElement("canvas");
    scratch.width = this.canvas.width;
    scratch.height = this.canvas.height;
    const sctx = scratch.getContext("2d");
    sctx.drawImage(bitmap, 0, 0, scratch.width, scratch.height);
    const pixels = sctx.getImageData(0, 0, scratch.width, scratch.height);
    let any = false;
    for (let i = 0; i < pixels.data.length; i += 4) {
      const on = pixels.data[i];
      pixels.data[i] = pixels.data[i + 1] = pixels.data[i + 2] = 255;
      pixels.data[i + 3] = on;
      any = any || on > 0;
    }
    this.ctx.putImageData(pixels, 0, 0);
    this.painted = any;
    this.onChange();
  }

  #remember() {
    this.history.push({ data: this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height), painted: this.painted });
    if (this.history.length > UNDO_DEPTH) this.history.shift();
  }

  #stroke(event, start) {
    const rect = this.canvas.getBoundingClientRect();
    const scale = this.canvas.width / rect.width;
    const point = { x: (event.clientX - rect.left) * scale, y: (event.clientY - rect.top) * scale };
    const ctx = this.ctx;
    const erase = this.tool() === "eraser";
    ctx.globalCompositeOperation = erase ? "destination-out" : "source-over";
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
    ctx.globalCompositeOperation = "source-over";
    this.last = point;
    if (!erase) this.painted = true;
  }

  #anyPainted() {
    const data = this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) return true;
    return false;
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
