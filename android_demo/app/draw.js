// Draws detections (source-normalised [ymin, xmin, ymax, xmax]) with label and score.

const COLORS = ['#ff3b30', '#34c759', '#007aff', '#ff9500', '#af52de', '#5ac8fa', '#ffcc00', '#ff2d55'];

export function drawDetections(ctx, detections, width, height) {
  const font = Math.max(12, Math.round(height / 30));
  ctx.lineWidth = Math.max(2, Math.round(height / 200));
  ctx.font = `${font}px sans-serif`;
  ctx.textBaseline = 'top';
  for (const d of detections) {
    const [y0, x0, y1, x1] = d.box;
    const color = COLORS[((d.classId % COLORS.length) + COLORS.length) % COLORS.length];
    ctx.strokeStyle = color;
    ctx.strokeRect(x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height);
    const text = `${d.label} ${(100 * d.score).toFixed(0)}%`;
    const tw = ctx.measureText(text).width + 8;
    const ty = Math.max(0, y0 * height - font - 4);
    ctx.fillStyle = color;
    ctx.fillRect(x0 * width, ty, tw, font + 4);
    ctx.fillStyle = '#fff';
    ctx.fillText(text, x0 * width + 4, ty + 2);
  }
}
