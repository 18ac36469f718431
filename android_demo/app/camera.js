// The phone's camera as a <video>: rear camera first, a switch to the other one, and errors
// turned into sentences a user can act on.

/** Opens the camera facing `facing` ("environment" = rear, "user" = front) into `video`. */
export async function openCamera(video, facing, previous) {
  if (previous) previous.getTracks().forEach((t) => t.stop());
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error(window.isSecureContext
      ? 'This browser has no camera API (getUserMedia).'
      : `No camera: the page must be opened over HTTPS or at http://localhost (it is at ${location.origin}). `
        + 'See the README: adb reverse tcp:8000 tcp:8000, then http://localhost:8000.');
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: {facingMode: {ideal: facing}, width: {ideal: 640}, height: {ideal: 480}},
    });
  } catch (e) {
    throw new Error(cameraMessage(e));
  }
  video.srcObject = stream;
  video.muted = true;
  video.playsInline = true;
  await video.play();
  return stream;
}

function cameraMessage(e) {
  switch (e && e.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera permission refused: allow the camera for this site (lock icon > Permissions) and reload.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera found on this device.';
    case 'NotReadableError':
      return 'The camera is in use by another app: close it and press "switch camera".';
    default:
      return `Cannot open the camera (${e && e.name ? `${e.name}: ` : ''}${e && e.message ? e.message : e}).`;
  }
}
