// Progressive enhancement: copy buttons appear only where the clipboard API is available.
if (navigator.clipboard) {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = document.getElementById(button.dataset.copy).textContent;
      navigator.clipboard.writeText(text.replace(/\s+$/, "")).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy"; }, 1500);
      });
    });
  });
}
// A release URL (/pypi/<project>/<version>/) leads to its project page at #release-<version>:
// open that release's details.
function openLinkedRelease() {
  var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (target && target.tagName === "DETAILS") { target.open = true; }
}
openLinkedRelease();
window.addEventListener("hashchange", openLinkedRelease);
