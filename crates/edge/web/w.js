/* openclick web snippet: README "Website activity". Keeps the oc_id hand-off in a first-party cookie, sends page views. */
(function(w,d){var s=d.currentScript,a=function(n,v){return s.getAttribute("data-"+n)||v},e=s.src.replace(/\/w\.js([?#].*)?$/,""),n=a("param","oc_id"),c=a("cookie",n),l=w.location,u=new URL(l.href),q=u.searchParams,t=q.get(n),m,b,p;
if(t!==null){/^[\w-]{1,512}$/.test(t)&&(d.cookie=c+"="+t+";path=/;max-age="+864e2*a("days",30)+";samesite=lax"+(l.protocol=="https:"?";secure":""));q.delete(n);history.replaceState(history.state,"",u.href)}
m=d.cookie.match(new RegExp("(?:^|; )"+c+"=([\\w-]+)"));if(!m)return;
b="u="+encodeURIComponent(u.href)+"&r="+encodeURIComponent(d.referrer);p=e+"/w/"+m[1];
navigator.sendBeacon&&navigator.sendBeacon(p,b)||((new Image).src=p+"?"+b)})(window,document);
